using System.Runtime.InteropServices;

using Crisp.Linux;

namespace Crisp.Compel;

/// <summary>ptrace(2) requests used by crisp (x86-64 numbering).</summary>
internal static class PtraceRequest
{
    public const int PEEKDATA = 2, POKEDATA = 5, POKEUSER = 6, CONT = 7, KILL = 8, SINGLESTEP = 9,
        GETREGS = 12, SETREGS = 13, GETFPREGS = 14, SETFPREGS = 15, ATTACH = 16, DETACH = 17,
        SYSCALL = 24, SETOPTIONS = 0x4200, GETEVENTMSG = 0x4201, GETSIGINFO = 0x4202,
        SETSIGINFO = 0x4203, GETREGSET = 0x4204, SETREGSET = 0x4205, SEIZE = 0x4206,
        INTERRUPT = 0x4207, LISTEN = 0x4208, PEEKSIGINFO = 0x4209, GETSIGMASK = 0x420a,
        SETSIGMASK = 0x420b, SECCOMP_GET_FILTER = 0x420c, SECCOMP_GET_METADATA = 0x420d,
        GET_SYSCALL_INFO = 0x420e, GET_RSEQ_CONFIGURATION = 0x420f;

    public static string Name(int request) => request switch
    {
        PEEKDATA => "PTRACE_PEEKDATA", POKEDATA => "PTRACE_POKEDATA", POKEUSER => "PTRACE_POKEUSER", CONT => "PTRACE_CONT",
        KILL => "PTRACE_KILL", SINGLESTEP => "PTRACE_SINGLESTEP", GETREGS => "PTRACE_GETREGS",
        SETREGS => "PTRACE_SETREGS", GETFPREGS => "PTRACE_GETFPREGS", SETFPREGS => "PTRACE_SETFPREGS",
        ATTACH => "PTRACE_ATTACH", DETACH => "PTRACE_DETACH", SYSCALL => "PTRACE_SYSCALL",
        SETOPTIONS => "PTRACE_SETOPTIONS", GETEVENTMSG => "PTRACE_GETEVENTMSG",
        GETSIGINFO => "PTRACE_GETSIGINFO", SETSIGINFO => "PTRACE_SETSIGINFO",
        GETREGSET => "PTRACE_GETREGSET", SETREGSET => "PTRACE_SETREGSET", SEIZE => "PTRACE_SEIZE",
        INTERRUPT => "PTRACE_INTERRUPT", LISTEN => "PTRACE_LISTEN", PEEKSIGINFO => "PTRACE_PEEKSIGINFO",
        GETSIGMASK => "PTRACE_GETSIGMASK", SETSIGMASK => "PTRACE_SETSIGMASK",
        SECCOMP_GET_FILTER => "PTRACE_SECCOMP_GET_FILTER",
        SECCOMP_GET_METADATA => "PTRACE_SECCOMP_GET_METADATA",
        GET_SYSCALL_INFO => "PTRACE_GET_SYSCALL_INFO",
        GET_RSEQ_CONFIGURATION => "PTRACE_GET_RSEQ_CONFIGURATION",
        _ => $"ptrace request 0x{request:x}",
    };
}

/// <summary>ELF note types for PTRACE_GETREGSET / SETREGSET.</summary>
internal static class NtType
{
    public const int PRSTATUS = 1, PRFPREG = 2, X86_XSTATE = 0x202;
}

/// <summary>struct seccomp_metadata for PTRACE_SECCOMP_GET_METADATA.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct SeccompMetadata
{
    public ulong FilterOff;
    public ulong Flags;
}

/// <summary>struct ptrace_rseq_configuration (PTRACE_GET_RSEQ_CONFIGURATION).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct RseqConfiguration
{
    public ulong RseqAbiPointer;
    public uint RseqAbiSize;
    public uint Signature;
    public uint Flags;
    public uint Pad;
}

/// <summary>ptrace(2) bindings, Compel's own: nothing outside src/Crisp/Compel calls them (CompelEdgeTests).
/// Must be called from the thread that seized the tracee (see <see cref="Tracer"/>); from any other thread
/// the kernel answers ESRCH. The rest of crisp asks a <see cref="SeizedThread"/>, whose methods move
/// themselves onto the tracer thread.</summary>
internal static unsafe partial class Ptrace
{
    // The raw syscall, not glibc's variadic wrapper: PEEK* then store the word at *data
    // and -1 is unambiguously an error.
    [LibraryImport("libc", EntryPoint = "syscall", SetLastError = true)]
    private static partial long syscall4(long number, long request, long pid, nint addr, nint data);

    /// <summary>Raw request; throws SyscallException "ptrace(NAME, pid)" on failure.</summary>
    public static long Request(int request, int pid, nint addr = 0, nint data = 0)
    {
        long r = syscall4(Sysno.ptrace, request, pid, addr, data);
        if (r == -1)
            throw new SyscallException($"ptrace({PtraceRequest.Name(request)}, {pid})", Marshal.GetLastPInvokeError());
        return r;
    }

    /// <summary>Raw request returning -errno instead of throwing.</summary>
    public static long TryRequest(int request, int pid, nint addr = 0, nint data = 0)
    {
        long r = syscall4(Sysno.ptrace, request, pid, addr, data);
        return r == -1 ? -Marshal.GetLastPInvokeError() : r;
    }

    public static void Seize(int tid, PtraceOptions options) => Request(PtraceRequest.SEIZE, tid, 0, (nint)options);
    public static void Interrupt(int tid) => Request(PtraceRequest.INTERRUPT, tid);
    public static void Cont(int tid, int signal = 0) => Request(PtraceRequest.CONT, tid, 0, signal);
    public static void Syscall(int tid, int signal = 0) => Request(PtraceRequest.SYSCALL, tid, 0, signal);
    public static void Detach(int tid, int signal = 0) => Request(PtraceRequest.DETACH, tid, 0, signal);
    public static void Listen(int tid) => Request(PtraceRequest.LISTEN, tid);
    public static void SetOptions(int tid, PtraceOptions options) => Request(PtraceRequest.SETOPTIONS, tid, 0, (nint)options);

    public static ulong GetEventMsg(int tid)
    {
        ulong msg;
        Request(PtraceRequest.GETEVENTMSG, tid, 0, (nint)(&msg));
        return msg;
    }

    public static ulong PeekData(int tid, ulong address)
    {
        ulong word;
        Request(PtraceRequest.PEEKDATA, tid, (nint)address, (nint)(&word));
        return word;
    }

    public static void PokeData(int tid, ulong address, ulong word)
        => Request(PtraceRequest.POKEDATA, tid, (nint)address, (nint)word);

    public static UserRegs GetRegs(int tid)
    {
        UserRegs regs;
        Request(PtraceRequest.GETREGS, tid, 0, (nint)(&regs));
        return regs;
    }

    public static void SetRegs(int tid, in UserRegs regs)
    {
        fixed (UserRegs* p = &regs)
            Request(PtraceRequest.SETREGS, tid, 0, (nint)p);
    }

    /// <summary>siginfo_t (128 bytes) of the signal that caused the current stop.</summary>
    public static byte[] GetSigInfo(int tid)
    {
        var info = new byte[128];
        fixed (byte* p = info)
            Request(PtraceRequest.GETSIGINFO, tid, 0, (nint)p);
        return info;
    }

    /// <summary>The thread's blocked-signal mask (bit n-1 = signal n).</summary>
    public static ulong GetSigMask(int tid)
    {
        ulong mask;
        Request(PtraceRequest.GETSIGMASK, tid, sizeof(ulong), (nint)(&mask));
        return mask;
    }

    public static void SetSigMask(int tid, ulong mask)
        => Request(PtraceRequest.SETSIGMASK, tid, sizeof(ulong), (nint)(&mask));

    /// <summary>PTRACE_GETREGSET into <paramref name="buffer"/>; returns the length the kernel filled.</summary>
    public static int GetRegSet(int tid, int noteType, Span<byte> buffer)
    {
        fixed (byte* p = buffer)
        {
            var iov = new IoVec { Base = (nint)p, Length = (nuint)buffer.Length };
            Request(PtraceRequest.GETREGSET, tid, noteType, (nint)(&iov));
            return (int)iov.Length;
        }
    }

    public static void SetRegSet(int tid, int noteType, ReadOnlySpan<byte> data)
    {
        fixed (byte* p = data)
        {
            var iov = new IoVec { Base = (nint)p, Length = (nuint)data.Length };
            Request(PtraceRequest.SETREGSET, tid, noteType, (nint)(&iov));
        }
    }

    /// <summary>The seccomp filter at <paramref name="index"/> (0 = oldest) as raw sock_filter
    /// instructions (8 bytes each). Returns null past the last filter (ENOENT).</summary>
    public static byte[]? SeccompGetFilter(int tid, int index)
    {
        long count = TryRequest(PtraceRequest.SECCOMP_GET_FILTER, tid, index, 0);
        if (count == -Errnos.ENOENT)
            return null;
        if (count < 0)
            throw new SyscallException($"ptrace(PTRACE_SECCOMP_GET_FILTER, {tid})", (int)-count);
        var program = new byte[count * 8];
        fixed (byte* p = program)
            Request(PtraceRequest.SECCOMP_GET_FILTER, tid, index, (nint)p);
        return program;
    }

    public static SeccompMetadata SeccompGetMetadata(int tid, int index)
    {
        var meta = new SeccompMetadata { FilterOff = (ulong)index };
        Request(PtraceRequest.SECCOMP_GET_METADATA, tid, sizeof(SeccompMetadata), (nint)(&meta));
        return meta;
    }

    public static RseqConfiguration GetRseqConfiguration(int tid)
    {
        RseqConfiguration conf;
        Request(PtraceRequest.GET_RSEQ_CONFIGURATION, tid, sizeof(RseqConfiguration), (nint)(&conf));
        return conf;
    }

    // Bigger than any xstate today (AMX is ~11 KiB); the kernel shortens iov_len to the real size.
    private const int XstateProbeSize = 64 * 1024;

    /// <summary>The whole XSAVE area (NT_X86_XSTATE, standard layout), exactly as long as the kernel says.</summary>
    public static byte[] GetXstate(int tid)
    {
        // One probe buffer per thread (ptrace runs on the tracer thread), never zeroed: the kernel writes only the
        // first few KiB, and a fresh 64 KiB array would cost 16 page faults per call.
        var buffer = _xstateProbe ??= GC.AllocateUninitializedArray<byte>(XstateProbeSize);
        int length = GetRegSet(tid, NtType.X86_XSTATE, buffer);
        return buffer.AsSpan(0, length).ToArray();
    }

    [ThreadStatic]
    private static byte[]? _xstateProbe;

    public static void SetXstate(int tid, ReadOnlySpan<byte> area) => SetRegSet(tid, NtType.X86_XSTATE, area);

    /// <summary>The legacy 512-byte FXSAVE area (NT_PRFPREG).</summary>
    public static byte[] GetFpregs(int tid)
    {
        var buffer = new byte[Xsave.FxsaveSize];
        int length = GetRegSet(tid, NtType.PRFPREG, buffer);
        return buffer.AsSpan(0, length).ToArray();
    }

    public static void SetFpregs(int tid, ReadOnlySpan<byte> area) => SetRegSet(tid, NtType.PRFPREG, area);

    /// <summary>Up to buffer.Length / SigInfo.Size queued siginfos from <paramref name="offset"/> on, without
    /// dequeuing them; returns how many were copied.</summary>
    public static int PeekSigInfo(int tid, ulong offset, bool shared, byte[] buffer)
    {
        var args = new PeekSigInfoArgs
        {
            Off = offset,
            Flags = shared ? PEEKSIGINFO_SHARED : 0,
            Nr = buffer.Length / SigInfo.Size,
        };
        long n;
        fixed (byte* p = buffer)
            n = TryRequest(PtraceRequest.PEEKSIGINFO, tid, (nint)(&args), (nint)p);
        if (n < 0)
            throw new SyscallException($"ptrace(PTRACE_PEEKSIGINFO{(shared ? ", shared" : "")}, {tid})", (int)-n);
        return (int)n;
    }

    /// <summary>Peek the process-wide queue instead of the thread's private one.</summary>
    private const uint PEEKSIGINFO_SHARED = 1;

    [StructLayout(LayoutKind.Sequential)]
    private struct PeekSigInfoArgs
    {
        public ulong Off;
        public uint Flags;
        public int Nr;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct IoVec
    {
        public nint Base;
        public nuint Length;
    }
}
