using Crisp.Linux;
using Crisp.Linux.Proc;

namespace Crisp.Compel;

/// <summary>When to seize with PTRACE_O_SUSPEND_SECCOMP (so remote syscalls are not filtered).</summary>
public enum SeccompSuspend
{
    /// <summary>Only threads that have a seccomp mode at seize time.</summary>
    Auto,
    Always,
    Never,
}

/// <summary>Seizes threads and processes with PTRACE_SEIZE + PTRACE_INTERRUPT, and detaches them.</summary>
public sealed class Seizer
{
    /// <summary>Options every seize uses: TRACESYSGOOD tells syscall-stops from SIGTRAP.
    /// Deliberately no EXITKILL: if crisp dies, the dumped tree must live on.</summary>
    public const PtraceOptions BaseOptions = PtraceOptions.TraceSysGood;

    private readonly Tracer _tracer;

    public Seizer(Tracer tracer) => _tracer = tracer;

    /// <summary>How long one thread may take to reach its interrupt stop (dump --timeout); null = no limit.
    /// A task in an uninterruptible wait (a vfork parent, a D-state I/O) never stops until it returns.</summary>
    public TimeSpan? StopTimeout { get; init; }

    public Tracer Tracer => _tracer;

    /// <summary>Seizes one thread and waits for it to stop. Returns null when the thread vanished
    /// (exited before or during the seize) — not an error.</summary>
    public SeizedThread? SeizeThread(int pid, int tid, SeccompSuspend seccomp = SeccompSuspend.Auto,
        PtraceOptions extraOptions = PtraceOptions.None) => _tracer.Run(() =>
    {
        var pending = Attach(pid, tid, seccomp, extraOptions);
        return pending is null ? null : Complete(pending);
    });

    /// <summary>Seizes every thread of the given processes while their cgroup is frozen: all are attached
    /// and interrupted while frozen (so none can fork or clone meanwhile), then <paramref name="thaw"/> lets
    /// them reach their interrupt stops, where each is recorded exactly as on the ptrace-only path.</summary>
    public List<SeizedProcess> SeizeFrozen(IReadOnlyList<int> pids, Action thaw, SeccompSuspend seccomp = SeccompSuspend.Auto)
        => _tracer.Run(() =>
    {
        var pending = new List<PendingSeize>();
        var processes = new List<SeizedProcess>();
        var later = new List<(int Pid, int Tid)>();
        try
        {
            // PTRACE_SEIZE of a group-stopped thread waits until it has moved from its stop to a trap
            // stop, which a frozen thread never does: it would hang crisp until the thaw. A stopped
            // thread cannot run, fork or clone either, so it is seized right after the thaw instead.
            foreach (int pid in pids)
                foreach (int tid in ThreadsOrNull(pid) ?? [])
                {
                    if (InGroupStop(pid, tid))
                        later.Add((pid, tid));
                    else if (Attach(pid, tid, seccomp, PtraceOptions.None) is { } p)
                        pending.Add(p);
                }
            thaw();
            foreach (var (pid, tid) in later)
                if (Attach(pid, tid, seccomp, PtraceOptions.None) is { } p)
                    pending.Add(p);
            var seized = pending.Select(Complete).OfType<SeizedThread>().ToList();
            pending.Clear();
            foreach (var group in seized.GroupBy(t => t.Pid))
                processes.Add(new SeizedProcess(this, group.Key, group.ToList()));
            return processes;
        }
        catch
        {
            foreach (var p in pending)
                Ptrace.TryRequest(PtraceRequest.DETACH, p.Tid, 0, 0);
            foreach (var p in processes)
                p.Detach();
            throw;
        }
    });

    /// <summary>The thread sleeps in its group stop (Signals.SIGSTOP & co.). A frozen thread shows 'D' in /proc
    /// whatever it was doing, so the kernel function it sleeps in (wchan) tells.</summary>
    private static bool InGroupStop(int pid, int tid)
    {
        try
        {
            return File.ReadAllText(Procfs.Host.Path(pid, $"task/{tid}/wchan")).Trim() == "do_signal_stop"
                || ThreadState(pid, tid) is 'T';
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return ThreadState(pid, tid) is 'T';
        }
    }

    /// <summary>What is known of a thread between PTRACE_SEIZE + PTRACE_INTERRUPT and its stop.</summary>
    private sealed record PendingSeize(int Pid, int Tid, PtraceOptions Options, SeccompSuspend Seccomp);

    /// <summary>PTRACE_SEIZE + PTRACE_INTERRUPT; null when the thread is gone or a zombie (which would
    /// never report the interrupt stop, e.g. a leader that called pthread_exit).</summary>
    private static PendingSeize? Attach(int pid, int tid, SeccompSuspend seccomp, PtraceOptions extraOptions)
    {
        if (ThreadState(pid, tid) is 'Z' or 'X')
            return null;
        var options = BaseOptions | extraOptions;
        if (seccomp == SeccompSuspend.Always)
            options |= PtraceOptions.SuspendSeccomp;
        long r = Ptrace.TryRequest(PtraceRequest.SEIZE, tid, 0, (nint)options);
        if (r == -Errnos.ESRCH)
            return null;
        // A task that became a zombie since the state was read refuses the seize (EPERM): as if seen a zombie.
        if (r == -Errnos.EPERM && ThreadState(pid, tid) is 'Z' or 'X' or '?')
            return null;
        if (r == -Errnos.EPERM && TracedBy(pid, tid) is { } tracer)
            throw new CrispException($"task {tid} is already traced by PID {tracer.Pid} ({tracer.Comm}); a task has one tracer at a time: detach it (end the strace or debugger) and dump again");
        if (r < 0)
            throw new SyscallException($"ptrace(PTRACE_SEIZE, {tid})", (int)-r);
        r = Ptrace.TryRequest(PtraceRequest.INTERRUPT, tid);
        if (r < 0 && r != -Errnos.ESRCH)
            throw new SyscallException($"ptrace(PTRACE_INTERRUPT, {tid})", (int)-r);
        return new PendingSeize(pid, tid, options, seccomp);
    }

    /// <summary>The thread's tracer (TracerPid of its status) and the tracer's name; null when untraced or gone.</summary>
    private static (int Pid, string Comm)? TracedBy(int pid, int tid)
    {
        try
        {
            int tracer = Linux.Proc.ProcStatus.ReadThread(pid, tid).TracerPid;
            if (tracer == 0)
                return null;
            string comm;
            try { comm = File.ReadAllText(Procfs.Host.Path(tracer, "comm")).Trim(); }
            catch (IOException) { comm = "?"; }
            return (tracer, comm);
        }
        catch (Exception e) when (e is IOException or SyscallException or CrispException)
        {
            return null;
        }
    }

    /// <summary>Waits for the interrupt stop and records the thread. Every seize path ends here, so every
    /// one records the thread's seccomp mode (SeizedThread reads it) and suspends its filters.</summary>
    private SeizedThread? Complete(PendingSeize p)
    {
        int groupStopSignal = WaitForInterruptStop(p.Tid, StopTimeout);
        if (groupStopSignal < 0)
            return null;
        var thread = new SeizedThread(_tracer, p.Pid, p.Tid, p.Options, groupStopSignal);
        if (p.Seccomp == SeccompSuspend.Auto && thread.SeccompMode > 0)
        {
            thread.Options = p.Options | PtraceOptions.SuspendSeccomp;
            Ptrace.SetOptions(p.Tid, thread.Options);
        }
        return thread;
    }

    /// <summary>Seizes every thread of <paramref name="pid"/>, re-reading /proc/PID/task until a pass finds
    /// no new thread. On failure, whatever was seized is detached again.</summary>
    public SeizedProcess SeizeProcess(int pid, SeccompSuspend seccomp = SeccompSuspend.Auto,
        PtraceOptions extraOptions = PtraceOptions.None) => _tracer.Run(() =>
    {
        var seized = new List<SeizedThread>();
        var known = new HashSet<int>();
        try
        {
            for (int pass = 0; ; pass++)
            {
                if (pass > 1000)
                    throw new InvalidOperationException($"threads of {pid} did not settle after {pass} passes");
                var tids = ThreadsOrNull(pid);
                if (tids == null)
                    throw new SyscallException($"seize {pid}: {Procfs.Host.Path(pid, "task")}", Errnos.ESRCH);
                bool found = false;
                // Leader first, so it is stopped before we chase the threads it creates.
                foreach (int tid in tids.OrderBy(t => t == pid ? 0 : 1))
                {
                    if (!known.Add(tid))
                        continue;
                    found = true;
                    var t = SeizeThread(pid, tid, seccomp, extraOptions);
                    if (t != null)
                        seized.Add(t);
                }
                if (!found)
                    break;
            }
            if (seized.Count == 0)
                throw new SyscallException($"seize {pid}: every thread vanished", Errnos.ESRCH);
            return new SeizedProcess(this, pid, seized);
        }
        catch
        {
            foreach (var t in seized)
                TryDetach(t);
            throw;
        }
    });

    /// <summary>Takes over a task the kernel attached to us by itself (the child of a traced task's
    /// fork/clone, with PTRACE_O_TRACEFORK/CLONE): waits for its first stop and records it exactly as a
    /// seized thread, seccomp mode included. <paramref name="options"/> are those it inherited.</summary>
    public SeizedThread Adopt(int pid, int tid, PtraceOptions options) => _tracer.Run(() =>
    {
        while (true)
        {
            Wait.WaitPid(tid, out var status, Wait.WALL);
            if (status.Dead)
                throw new SyscallException($"adopt {tid}: it died before its first stop ({status})", Errnos.ESRCH);
            if (status.Stopped && status.Event == PtraceEvent.Stop)
                return new SeizedThread(_tracer, pid, tid, options, 0);
            Ptrace.Cont(tid, 0);
        }
    });

    /// <summary>Detaches a thread, leaving it running — or group-stopped if it was (the kernel puts a
    /// detached thread back into a group stop that is still in effect).</summary>
    public void Detach(SeizedThread thread) => _tracer.Run(() =>
    {
        if (thread.IsDetached)
            return;
        long r = Ptrace.TryRequest(PtraceRequest.DETACH, thread.Tid, 0, 0);
        if (r < 0 && r != -Errnos.ESRCH)
            throw new SyscallException($"ptrace(PTRACE_DETACH, {thread.Tid})", (int)-r);
        thread.IsDetached = true;
    });

    private void TryDetach(SeizedThread thread)
    {
        try { Detach(thread); } catch (SyscallException) { }
    }

    /// <summary>Waits for the PTRACE_EVENT_STOP our interrupt causes. Returns 0 for a thread that was
    /// running, the stop signal for one in group-stop, -1 if it vanished. A signal-delivery stop that
    /// comes first is re-injected, so the tracee does not lose the signal.</summary>
    /// <summary>State letter of the thread, '?' when it is gone.</summary>
    private static char ThreadState(int pid, int tid)
    {
        try
        {
            return ProcStat.ReadThread(pid, tid).State;
        }
        catch (Exception e) when (e is DirectoryNotFoundException or FileNotFoundException or IOException or FormatException)
        {
            return '?';
        }
    }

    /// <summary>Thread ids of <paramref name="pid"/>; null when the process is gone.</summary>
    private static int[]? ThreadsOrNull(int pid)
    {
        try
        {
            return ProcTasks.Threads(pid);
        }
        catch (Exception e) when (e is DirectoryNotFoundException or FileNotFoundException or IOException)
        {
            return null;
        }
    }

    private static int WaitForInterruptStop(int tid, TimeSpan? timeout)
    {
        long start = System.Diagnostics.Stopwatch.GetTimestamp();
        while (true)
        {
            int r = Wait.TryWaitPid(tid, out var status, Wait.WALL | (timeout is null ? 0 : Wait.WNOHANG));
            if (r == 0)
            {
                // Still attached but not stopped: it cannot be detached until it stops; crisp's exit
                // releases it (the kernel drops a dead tracer's tracees and their pending interrupts).
                if (System.Diagnostics.Stopwatch.GetElapsedTime(start) > timeout)
                    throw new CrispException($"task {tid} did not stop within {timeout!.Value.TotalSeconds:0.#} s (--timeout); it is in state '{ThreadState(tid, tid)}'");
                // Most threads stop within microseconds: spin briefly before sleeping between polls.
                if (System.Diagnostics.Stopwatch.GetElapsedTime(start) < TimeSpan.FromMilliseconds(5))
                    System.Threading.Thread.Yield();
                else
                    System.Threading.Thread.Sleep(1);
                continue;
            }
            if (r == -Errnos.ECHILD)
                return -1;
            if (r < 0)
                throw new SyscallException($"waitpid({tid})", -r);
            if (status.Dead)
                return -1;
            if (!status.Stopped)
                continue;
            if (status.Event == PtraceEvent.Stop)
            {
                int sig = status.StopSignal;
                return sig is Signals.SIGSTOP or Signals.SIGTSTP or Signals.SIGTTIN or Signals.SIGTTOU ? sig : 0;
            }
            // A signal-delivery stop (event 0) carries a signal for the tracee: hand it back.
            // Any other event stop: just continue. The pending interrupt stops it again.
            int inject = status.Event == 0 && status.StopSignal != (Signals.SIGTRAP | 0x80) ? status.StopSignal : 0;
            long c = Ptrace.TryRequest(PtraceRequest.CONT, tid, 0, inject);
            if (c == -Errnos.ESRCH)
                continue;   // killed meanwhile: the next wait reports it
            if (c < 0)
                throw new SyscallException($"ptrace(PTRACE_CONT, {tid})", (int)-c);
        }
    }
}
