using System.Diagnostics;
using Crisp.Compel;
using Crisp.Linux;
using Crisp.Linux.Proc;

namespace Crisp.Dump;

/// <summary>Seizes the process tree rooted at the dump's root: a parent is stopped before its children
/// are listed, so its set of children cannot grow while we walk it.</summary>
public static class TreeSeizer
{
    public static void SeizeTree(DumpContext ctx)
    {
        int rootPid = ctx.Options.RootPid;
        if (rootPid <= 0 || !Procfs.Host.Exists(rootPid))
            throw new CrispException($"process {rootPid} not found") { Errno = Linux.Errnos.ESRCH };
        if (IsSelfOrAncestor(rootPid))
            throw new CrispException($"process {rootPid} is crisp itself or one of its ancestors");

        // Before anything is frozen or stopped: a privilege crisp lacks must fail the dump while the
        // tree has not been touched at all, naming the task, the operation and the privilege.
        CheckPrivileges(rootPid);

        var seizer = new Seizer(ctx.Tracer) { StopTimeout = ctx.Options.Timeout };
        if (ctx.Options.FreezeCgroup is { } cgroup)
        {
            if (!ctx.Plugins.NeedsInterruptOnlySeize)
            {
                ctx.Plugins.PauseDevices(rootPid);   // CRIU: the root only, before the freeze
                SeizeFrozen(ctx, seizer, cgroup);
                return;
            }
            ThawForInterruptOnly(ctx, cgroup);
        }
        var clock = Stopwatch.StartNew();
        var queue = new Queue<DumpTask>();
        queue.Enqueue(Seize(ctx, seizer, rootPid, null) ?? throw new CrispException($"process {rootPid} exited"));
        while (queue.Count > 0)
        {
            var task = queue.Dequeue();
            // The task is stopped: its set of children cannot grow, and a child that exits from now on
            // stays a zombie (its parent cannot reap it), so one pass over the list sees them all.
            foreach (int child in ProcTasks.AllChildren(task.Pid).Distinct().Order())
            {
                if (clock.Elapsed > ctx.Options.Timeout)
                    throw new CrispException($"seizing the tree took longer than {ctx.Options.Timeout.TotalSeconds:F0} s (--timeout)");
                if (Seize(ctx, seizer, child, task) is { } seized)
                    queue.Enqueue(seized);
            }
        }
        ctx.Log.Info($"seized {ctx.Tasks.Count} task(s), {ctx.Tasks.Sum(t => t.Threads.Count)} thread(s), {ctx.Tasks.Sum(t => t.Zombies.Count)} zombie(s) in {clock.Elapsed.TotalMilliseconds:F1} ms");
    }

    /// <summary>The --freeze-cgroup path: freeze (unless the runtime already did), find the tree while
    /// nothing can fork, attach every thread, thaw so they reach their interrupt stops.</summary>
    private static void SeizeFrozen(DumpContext ctx, Seizer seizer, string cgroup)
    {
        var clock = Stopwatch.StartNew();
        var freezer = Compel.Freezer.CgroupFreezer.Open(cgroup);
        ctx.Freezer = freezer;
        ctx.Log.Info($"cgroup {freezer.Path} ({freezer.Kind}) was {(freezer.WasFrozen ? "frozen" : "not frozen")}");
        if (!freezer.WasFrozen)
            freezer.Freeze(ctx.Options.Timeout);
        int root = ctx.Options.RootPid;
        if (!freezer.Processes().Contains(root))
            throw new CrispException($"process {root} is not in cgroup {freezer.Path}");

        var parentOf = new Dictionary<int, int?> { [root] = null };
        var order = new List<int> { root };
        for (int i = 0; i < order.Count; i++)
            foreach (int child in ProcTasks.AllChildren(order[i]).Distinct().Order())
                if (parentOf.TryAdd(child, order[i]))
                    order.Add(child);
        // Nothing can exit while frozen, but a zombie listed among the children stays one: set it aside.
        var zombies = new List<(int Pid, ProcStat Stat)>();
        foreach (int pid in order.ToList())
        {
            var (state, stat) = ChildStates.Read(pid);
            if (state == ChildState.Live)
                continue;
            if (pid == root)
                throw new CrispException($"process {root} is a zombie: there is nothing to dump");
            if (state == ChildState.ZombieLeader)
                throw new ZombieTaskException(pid);
            order.Remove(pid);
            if (state == ChildState.Zombie)
                zombies.Add((pid, stat!));
        }

        var processes = seizer.SeizeFrozen(order, freezer.Thaw).ToDictionary(p => p.Pid);
        var tasks = new Dictionary<int, DumpTask>();
        try
        {
            foreach (int pid in order)
            {
                var parent = parentOf[pid] is int pp ? tasks[pp] : null;
                var task = new DumpTask(processes[pid], parent, ctx.Log);
                processes.Remove(pid);
                tasks[pid] = task;
                ctx.Tasks.Add(task);
                parent?.Children.Add(task);
            }
        }
        finally
        {
            foreach (var p in processes.Values)
                p.Detach();
        }
        foreach (var (pid, stat) in zombies)
            if (parentOf[pid] is int pp && tasks.TryGetValue(pp, out var parentTask))
                parentTask.Zombies.Add(new DumpZombie(pid, parentTask, stat));
        ctx.Log.Info($"seized {ctx.Tasks.Count} task(s), {zombies.Count} zombie(s) through the frozen cgroup in {clock.Elapsed.TotalMilliseconds:F1} ms");
    }

    /// <summary>A plugin needs the tasks running to pause their devices (cuda-checkpoint cannot lock a frozen
    /// process): the cgroup is thawed if it was frozen and the tree seized by ptrace interrupt, each task right
    /// after its devices are paused. The freezer remembers the state it found, and the dumper puts it back on
    /// success and on failure. The threads are recorded by Seizer.Complete like on every other path.</summary>
    private static void ThawForInterruptOnly(DumpContext ctx, string cgroup)
    {
        var freezer = Compel.Freezer.CgroupFreezer.Open(cgroup);
        ctx.Freezer = freezer;
        ctx.Log.Info($"cgroup {freezer.Path} ({freezer.Kind}) was {(freezer.WasFrozen ? "frozen: thawing it" : "not frozen")}; seizing by ptrace interrupt for plugin(s) {string.Join(", ", ctx.Plugins.Active.Where(p => p.NeedsInterruptOnlySeize).Select(p => p.Name))}");
        if (freezer.WasFrozen)
            freezer.ThawAndWait(ctx.Options.Timeout);
        if (!freezer.Processes().Contains(ctx.Options.RootPid))
            throw new CrispException($"process {ctx.Options.RootPid} is not in cgroup {freezer.Path}");
    }

    /// <summary>Seizes one task of the tree. Returns null for a child that is not (or no longer) a live
    /// task: a zombie is recorded on its parent, a child reaped meanwhile is simply not part of the tree.</summary>
    private static DumpTask? Seize(DumpContext ctx, Seizer seizer, int pid, DumpTask? parent)
    {
        if (!IsLive(ctx, pid, parent))
            return null;
        ctx.Plugins.PauseDevices(pid);   // while it still runs
        SeizedProcess process;
        try
        {
            process = seizer.SeizeProcess(pid);
        }
        catch (Linux.SyscallException e) when (e.Errno == Linux.Errnos.ESRCH)
        {
            // It exited between being listed and being seized: a zombie now (its parent is stopped), or gone.
            if (!IsLive(ctx, pid, parent))
                return null;
            throw;
        }
        DumpTask task;
        try
        {
            task = new DumpTask(process, parent, ctx.Log);
            // A PID listed as a child but reaped and reused before the seize is someone else's task.
            if (parent is not null && task.Stat.PPid != parent.Pid)
            {
                ctx.Log.Info($"task {pid} is no longer a child of {parent.Pid}: left out");
                process.Detach();
                return null;
            }
        }
        catch
        {
            process.Detach();
            throw;
        }
        ctx.Tasks.Add(task);
        parent?.Children.Add(task);
        ctx.Log.Debug($"seized {pid} ({task.Stat.Comm}) with {process.Threads.Count} thread(s), seccomp {string.Join(",", process.Threads.Select(t => t.SeccompMode))}");
        return task;
    }

    /// <summary>True for a live task to seize; records a zombie on its parent; false for one that is gone.</summary>
    private static bool IsLive(DumpContext ctx, int pid, DumpTask? parent)
    {
        var (state, stat) = ChildStates.Read(pid);
        switch (state)
        {
            case ChildState.Live:
                return true;
            case ChildState.Zombie when parent is not null:
                if (stat!.PPid != parent.Pid)
                    return false;
                parent.Zombies.Add(new DumpZombie(pid, parent, stat));
                ctx.Log.Debug($"task {pid} ({stat.Comm}) is a zombie of {parent.Pid}, exit status 0x{parent.Zombies[^1].ExitCode:x}");
                return false;
            case ChildState.ZombieLeader:
                throw new ZombieTaskException(pid);
            case ChildState.Gone when parent is not null:
                return false;
            default:
                throw new CrispException(state == ChildState.Gone ? $"process {pid} not found" : $"process {pid} is a zombie: there is nothing to dump");
        }
    }

    /// <summary>Walks the tree as /proc shows it (nothing is stopped) and checks that crisp holds the
    /// capabilities the dump will need for every thread: CAP_SYS_PTRACE to seize a task of other ids or
    /// with capabilities crisp lacks; CAP_SYS_ADMIN for PTRACE_O_SUSPEND_SECCOMP (any seccomp mode) and
    /// PTRACE_SECCOMP_GET_FILTER (filter mode). Tasks that appear later are checked again by the dump
    /// stages themselves; this is the early, harmless refusal.</summary>
    public static void CheckPrivileges(int rootPid)
    {
        var caps = Capabilities.Get();
        bool Has(int cap) => (caps.Effective & (1UL << cap)) != 0;
        bool ptrace = Has(Capabilities.CAP_SYS_PTRACE), admin = Has(Capabilities.CAP_SYS_ADMIN);
        if (ptrace && admin)
            return;
        var self = ProcStatus.Read(ProcessIds.Pid);
        var seen = new HashSet<int>();
        var queue = new Queue<int>([rootPid]);
        while (queue.Count > 0)
        {
            int pid = queue.Dequeue();
            if (!seen.Add(pid))
                continue;
            foreach (int tid in TryThreads(pid))
            {
                ProcStatus s;
                try { s = ProcStatus.ReadThread(pid, tid); }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException or SyscallException) { continue; }
                string who = tid == pid ? $"task {pid}" : $"task {pid} (thread {tid})";
                // __ptrace_may_access (PTRACE_MODE_REALCREDS): our real ids against all three of the task's.
                bool sameIds = s.Uid.Take(3).All(u => u == self.Uid[0]) && s.Gid.Take(3).All(g => g == self.Gid[0]);
                if (!ptrace && (!sameIds || (s.CapPrm & ~caps.Permitted) != 0))
                    throw new CrispException($"{who} (uid {string.Join('/', s.Uid.Take(3))}): seizing it (PTRACE_SEIZE) needs CAP_SYS_PTRACE, which crisp does not have; nothing was touched");
                if (!admin && s.Seccomp == Linux.Seccomp.SECCOMP_MODE_FILTER)
                    throw new CrispException($"{who} has seccomp filters: reading them (PTRACE_SECCOMP_GET_FILTER) and suspending them while crisp works in it (PTRACE_O_SUSPEND_SECCOMP) need CAP_SYS_ADMIN, which crisp does not have; nothing was touched");
                if (!admin && s.Seccomp != 0)
                    throw new CrispException($"{who} is in strict seccomp mode: suspending it while crisp works in it (PTRACE_O_SUSPEND_SECCOMP) needs CAP_SYS_ADMIN, which crisp does not have; nothing was touched");
            }
            foreach (int child in TryChildren(pid))
                queue.Enqueue(child);
        }
    }

    private static int[] TryThreads(int pid)
    {
        try { return ProcTasks.Threads(pid); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or SyscallException) { return []; }
    }

    private static int[] TryChildren(int pid)
    {
        try { return ProcTasks.AllChildren(pid); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or SyscallException) { return []; }
    }

    private static bool IsSelfOrAncestor(int pid)
    {
        for (int p = ProcessIds.Pid; p > 1; p = ProcStat.Read(p).PPid)
            if (p == pid)
                return true;
        return pid == 1;
    }
}

/// <summary>A task whose main thread is a zombie while other threads still run: usually a process in the
/// middle of exiting (transient: the dump seizes again), else a leader that called pthread_exit, which crisp
/// (like CRIU) cannot dump.</summary>
public sealed class ZombieTaskException(int pid)
    : CrispException($"task {pid}: its main thread has exited while other threads still run; crisp cannot dump that")
{
    public int Pid { get; } = pid;
}
