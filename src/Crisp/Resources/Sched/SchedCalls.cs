using Crisp.Linux;

namespace Crisp.Resources.Sched;

/// <summary>Scheduling calls crisp makes on another thread by tid (no remote syscall needed: root with
/// CAP_SYS_NICE may read and set them for any task).</summary>
internal static unsafe class SchedCalls
{
    public const int SCHED_OTHER = 0, SCHED_FIFO = 1, SCHED_RR = 2, SCHED_BATCH = 3, SCHED_IDLE = 5,
        SCHED_DEADLINE = 6, SCHED_EXT = 7, SCHED_RESET_ON_FORK = 0x40000000;
    private const long getpriority = 140, setpriority = 141, sched_getparam = 143, sched_setscheduler = 144,
        sched_getscheduler = 145, ioprio_set = 251, ioprio_get = 252;
    private const int PRIO_PROCESS = 0, IOPRIO_WHO_PROCESS = 1;

    /// <summary>The policy with SCHED_RESET_ON_FORK or'ed in, as sched_getscheduler returns it.</summary>
    public static int Policy(int tid) => (int)RawSyscall.Call($"sched_getscheduler({tid})", sched_getscheduler, tid);

    public static int Priority(int tid)
    {
        int prio = 0;
        RawSyscall.Call($"sched_getparam({tid})", sched_getparam, tid, (long)&prio);
        return prio;
    }

    /// <summary>getpriority's raw syscall answers 20 - nice (never negative).</summary>
    public static int Nice(int tid) => 20 - (int)RawSyscall.Call($"getpriority({tid})", getpriority, PRIO_PROCESS, tid);

    public static void SetScheduler(int tid, int policy, int prio)
    {
        int param = prio;
        RawSyscall.Call($"sched_setscheduler({tid}, {policy}, {prio})", sched_setscheduler, tid, policy, (long)&param);
    }

    public static void SetNice(int tid, int nice) => RawSyscall.Call($"setpriority({tid}, {nice})", setpriority, PRIO_PROCESS, tid, nice);

    public static int IoPriority(int tid) => (int)RawSyscall.Call($"ioprio_get({tid})", ioprio_get, IOPRIO_WHO_PROCESS, tid);

    public static void SetIoPriority(int tid, int ioprio) => RawSyscall.Call($"ioprio_set({tid}, 0x{ioprio:x})", ioprio_set, IOPRIO_WHO_PROCESS, tid, ioprio);
}
