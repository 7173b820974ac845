namespace Crisp.Linux;

/// <summary>PTRACE_O_* options for PTRACE_SEIZE / PTRACE_SETOPTIONS.</summary>
[Flags]
public enum PtraceOptions : long
{
    None = 0,
    TraceSysGood = 1,
    TraceFork = 1 << 1,
    TraceVfork = 1 << 2,
    TraceClone = 1 << 3,
    TraceExec = 1 << 4,
    TraceVforkDone = 1 << 5,
    TraceExit = 1 << 6,
    TraceSeccomp = 1 << 7,
    ExitKill = 1 << 20,
    SuspendSeccomp = 1 << 21,
}

/// <summary>PTRACE_EVENT_* codes, found in bits 16..23 of a wait status.</summary>
public static class PtraceEvent
{
    public const int Fork = 1, Vfork = 2, Clone = 3, Exec = 4, VforkDone = 5, Exit = 6, Seccomp = 7,
        Stop = 128;
}
