using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Crisp.Linux;

/// <summary>siginfo_t (128 bytes) with accessors for the common union members (x86-64 layout).</summary>
[StructLayout(LayoutKind.Sequential, Size = 128)]
public unsafe struct SigInfo
{
    public const int Size = 128;

    // si_code values.
    public const int SI_USER = 0, SI_KERNEL = 0x80, SI_QUEUE = -1, SI_TIMER = -2, SI_TKILL = -6;
    public const int CLD_EXITED = 1, CLD_KILLED = 2, CLD_DUMPED = 3, CLD_TRAPPED = 4, CLD_STOPPED = 5, CLD_CONTINUED = 6;

    private fixed byte _bytes[128];

    public int Signo { readonly get => I32(0); set => SetI32(0, value); }
    public int Errno { readonly get => I32(4); set => SetI32(4, value); }
    public int Code { readonly get => I32(8); set => SetI32(8, value); }

    /// <summary>si_pid (kill, SIGCHLD, sigqueue).</summary>
    public int Pid { readonly get => I32(16); set => SetI32(16, value); }
    /// <summary>si_uid (kill, SIGCHLD, sigqueue).</summary>
    public uint Uid { readonly get => (uint)I32(20); set => SetI32(20, (int)value); }
    /// <summary>si_status (SIGCHLD / waitid): exit code or signal.</summary>
    public int Status { readonly get => I32(24); set => SetI32(24, value); }
    /// <summary>si_value / si_int (sigqueue, POSIX timers).</summary>
    public ulong Value { readonly get => U64(24); set => SetU64(24, value); }
    /// <summary>si_addr (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP).</summary>
    public ulong Addr { readonly get => U64(16); set => SetU64(16, value); }
    /// <summary>si_timerid (POSIX timers).</summary>
    public int TimerId { readonly get => I32(16); set => SetI32(16, value); }
    /// <summary>si_overrun (POSIX timers).</summary>
    public int Overrun { readonly get => I32(20); set => SetI32(20, value); }
    /// <summary>si_syscall (SIGSYS from seccomp).</summary>
    public int Syscall { readonly get => I32(24); set => SetI32(24, value); }

    /// <summary>The raw 128 bytes (as CRIU stores pending signals).</summary>
    public readonly byte[] ToArray()
    {
        var copy = this;
        return new ReadOnlySpan<byte>(copy._bytes, Size).ToArray();
    }

    public static SigInfo FromBytes(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length != Size)
            throw new ArgumentException($"siginfo is {Size} bytes, got {bytes.Length}");
        return MemoryMarshal.Read<SigInfo>(bytes);
    }

    private readonly int I32(int offset) { fixed (byte* p = _bytes) return Unsafe.ReadUnaligned<int>(p + offset); }
    private readonly ulong U64(int offset) { fixed (byte* p = _bytes) return Unsafe.ReadUnaligned<ulong>(p + offset); }
    private void SetI32(int offset, int v) { fixed (byte* p = _bytes) Unsafe.WriteUnaligned(p + offset, v); }
    private void SetU64(int offset, ulong v) { fixed (byte* p = _bytes) Unsafe.WriteUnaligned(p + offset, v); }
}
