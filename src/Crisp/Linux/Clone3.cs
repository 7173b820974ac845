using System.Runtime.InteropServices;

namespace Crisp.Linux;

/// <summary>clone3(2). Forking the .NET runtime itself is unsafe, so crisp runs clone3 as a remote
/// syscall inside a puppet; here are the struct, flags and a probe.</summary>
public static unsafe class Clone3
{
    public const ulong CLONE_VM = 0x100, CLONE_FS = 0x200, CLONE_FILES = 0x400, CLONE_SIGHAND = 0x800,
        CLONE_PIDFD = 0x1000, CLONE_PTRACE = 0x2000, CLONE_VFORK = 0x4000, CLONE_PARENT = 0x8000,
        CLONE_THREAD = 0x10000, CLONE_NEWNS = 0x20000, CLONE_SYSVSEM = 0x40000, CLONE_SETTLS = 0x80000,
        CLONE_PARENT_SETTID = 0x100000, CLONE_CHILD_CLEARTID = 0x200000, CLONE_UNTRACED = 0x800000,
        CLONE_CHILD_SETTID = 0x1000000, CLONE_NEWCGROUP = 0x2000000, CLONE_NEWUTS = 0x4000000,
        CLONE_NEWIPC = 0x8000000, CLONE_NEWUSER = 0x10000000, CLONE_NEWPID = 0x20000000,
        CLONE_NEWNET = 0x40000000, CLONE_IO = 0x80000000, CLONE_CLEAR_SIGHAND = 0x100000000,
        CLONE_INTO_CGROUP = 0x200000000, CLONE_NEWTIME = 0x80;

    /// <summary>Sizes of struct clone_args by version (VER2 adds cgroup).</summary>
    public const int CLONE_ARGS_SIZE_VER0 = 64, CLONE_ARGS_SIZE_VER1 = 80, CLONE_ARGS_SIZE_VER2 = 88;

    /// <summary>Raw clone3 in THIS process; returns -errno. Only safe for probes that fail before
    /// forking (bad size/flags) — never use it to really fork the runtime.</summary>
    public static long TryRaw(CloneArgs* args, ulong size)
        => RawSyscall.TryCall(Sysno.clone3, (long)args, (long)size);

    /// <summary>True when the kernel has clone3: a zero size is rejected with EINVAL, not ENOSYS.</summary>
    public static bool IsSupported()
    {
        CloneArgs args = default;
        return TryRaw(&args, 0) != -Errnos.ENOSYS;
    }
}

/// <summary>struct clone_args (88 bytes, VER2). Pointers are addresses in the process that calls clone3.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct CloneArgs
{
    public ulong Flags;
    /// <summary>Where to store the pidfd (CLONE_PIDFD).</summary>
    public ulong PidFd;
    public ulong ChildTid;
    public ulong ParentTid;
    /// <summary>Signal sent to the parent on exit (SIGCHLD for processes, 0 for threads).</summary>
    public ulong ExitSignal;
    /// <summary>Lowest address of the stack (not its top).</summary>
    public ulong Stack;
    public ulong StackSize;
    public ulong Tls;
    /// <summary>Pointer to an array of pid_t: wanted PIDs, innermost PID namespace first.</summary>
    public ulong SetTid;
    public ulong SetTidSize;
    /// <summary>cgroup fd for CLONE_INTO_CGROUP.</summary>
    public ulong Cgroup;
}
