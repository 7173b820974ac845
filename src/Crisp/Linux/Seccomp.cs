using System.Runtime.InteropServices;

namespace Crisp.Linux;

/// <summary>seccomp(2) and classic-BPF filter structs.</summary>
public static unsafe class Seccomp
{
    // Operations.
    public const int SECCOMP_SET_MODE_STRICT = 0, SECCOMP_SET_MODE_FILTER = 1,
        SECCOMP_GET_ACTION_AVAIL = 2, SECCOMP_GET_NOTIF_SIZES = 3;

    // Modes as /proc/PID/status "Seccomp:" and PR_GET_SECCOMP report them.
    public const int SECCOMP_MODE_DISABLED = 0, SECCOMP_MODE_STRICT = 1, SECCOMP_MODE_FILTER = 2;

    // SECCOMP_SET_MODE_FILTER flags.
    public const uint SECCOMP_FILTER_FLAG_TSYNC = 1, SECCOMP_FILTER_FLAG_LOG = 2,
        SECCOMP_FILTER_FLAG_SPEC_ALLOW = 4, SECCOMP_FILTER_FLAG_NEW_LISTENER = 8,
        SECCOMP_FILTER_FLAG_TSYNC_ESRCH = 16, SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV = 32;

    // Filter return actions.
    public const uint SECCOMP_RET_KILL_PROCESS = 0x80000000, SECCOMP_RET_KILL_THREAD = 0,
        SECCOMP_RET_TRAP = 0x00030000, SECCOMP_RET_ERRNO = 0x00050000, SECCOMP_RET_USER_NOTIF = 0x7fc00000,
        SECCOMP_RET_TRACE = 0x7ff00000, SECCOMP_RET_LOG = 0x7ffc0000, SECCOMP_RET_ALLOW = 0x7fff0000,
        SECCOMP_RET_ACTION_FULL = 0xffff0000, SECCOMP_RET_DATA = 0x0000ffff;

    /// <summary>Installs a filter on the calling thread (or all threads with TSYNC); returns the
    /// listener fd with NEW_LISTENER, else 0. Needs no_new_privs or CAP_SYS_ADMIN.</summary>
    public static int SetModeFilter(ReadOnlySpan<SockFilter> program, uint flags = 0)
    {
        fixed (SockFilter* p = program)
        {
            var prog = new SockFprog { Length = (ushort)program.Length, Filter = (nint)p };
            return (int)RawSyscall.Call("seccomp(SECCOMP_SET_MODE_FILTER)", Sysno.seccomp,
                SECCOMP_SET_MODE_FILTER, flags, (long)&prog);
        }
    }

    /// <summary>Does the kernel know this return action?</summary>
    public static bool IsActionAvailable(uint action)
    {
        long r = RawSyscall.TryCall(Sysno.seccomp, SECCOMP_GET_ACTION_AVAIL, 0, (long)&action);
        if (r == 0)
            return true;
        if (r == -Errnos.EOPNOTSUPP)
            return false;
        throw new SyscallException("seccomp(SECCOMP_GET_ACTION_AVAIL)", (int)-r);
    }
}

/// <summary>struct sock_filter: one classic-BPF instruction (8 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct SockFilter
{
    public ushort Code;
    public byte Jt;
    public byte Jf;
    public uint K;

    public SockFilter(ushort code, byte jt, byte jf, uint k)
    {
        Code = code;
        Jt = jt;
        Jf = jf;
        K = k;
    }

    /// <summary>BPF_RET | BPF_K: return <paramref name="k"/>.</summary>
    public static SockFilter Return(uint k) => new(0x06, 0, 0, k);

    public override readonly string ToString() => $"{{ 0x{Code:x2}, {Jt}, {Jf}, 0x{K:x8} }}";
}

/// <summary>struct sock_fprog (16 bytes): length in instructions and a pointer to them.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct SockFprog
{
    public ushort Length;
    public nint Filter;
}

// struct seccomp_metadata (PTRACE_SECCOMP_GET_METADATA) is SeccompMetadata in Ptrace.cs (Compel's).
