using System.Runtime.ExceptionServices;
using Crisp.Linux;
using Crisp.Linux.Proc;

namespace Crisp.Compel;

/// <summary>The one OS thread that owns every ptrace request and every waitpid on tracees.
/// The kernel binds a tracee to the thread that seized it, so all Compel work is queued here.
/// Calls made from the tracer thread itself run inline. There is no process-wide one: whoever seizes
/// (a dump, a restore, a probe child) owns its tracer and disposes it.</summary>
public sealed class Tracer : IDisposable
{
    // A plain queue under a lock, waited on with Monitor: BlockingCollection (SemaphoreSlim) and a spinning
    // ManualResetEventSlim spin with sched_yield before they block, and on two shared vCPUs the spinning side
    // took the CPU from the tracer or the tracee it waits for (a small restore: ~4,000 sched_yield calls).
    private readonly Queue<WorkItem> _queue = new();
    private bool _closed;
    private readonly Thread _thread;
    private readonly ManualResetEventSlim _started = new();
    private ulong[]? _originalAffinity;
    [ThreadStatic] private static Tracer? t_current;
    private int _pinnedCpu = -1;

    /// <summary>Kernel thread id of the tracer thread.</summary>
    public int ThreadId { get; private set; }

    /// <summary>The vdso trampolines of the processes this tracer's remote sessions work in (one per process, shared
    /// by its threads): state of this tracer's run, not of the crisp process.</summary>
    public VdsoTrampoline Trampolines { get; } = new();

    public Tracer(string name = "crisp-tracer")
    {
        EnsureSigchldNotIgnored();
        // Whole restore and dump phases run here (no hand-off per remote syscall): a main thread's stack.
        _thread = new Thread(Loop, 8 << 20) { IsBackground = true, Name = name };
        _thread.Start();
        _started.Wait();
    }

    public bool IsTracerThread => Thread.CurrentThread == _thread;

    /// <summary>The tracer whose thread this is, or null on any other thread.</summary>
    public static Tracer? Current => t_current;

    /// <summary>On the tracer thread: runs the work queued meanwhile until <paramref name="done"/> holds (another
    /// thread makes it true, then calls <see cref="Wake"/>). A phase running on the tracer thread waits this way
    /// for a helper thread that may need the tracer itself.</summary>
    public void PumpUntil(Func<bool> done)
    {
        if (!IsTracerThread)
            throw new InvalidOperationException("PumpUntil runs on the tracer thread");
        while (true)
        {
            WorkItem item;
            lock (_queue)
            {
                while (_queue.Count == 0 && !done())
                    Monitor.Wait(_queue);
                if (_queue.Count == 0)
                    return;
                item = _queue.Dequeue();
            }
            Execute(item);
        }
    }

    /// <summary>Wakes a <see cref="PumpUntil"/> to look at its condition again.</summary>
    public void Wake()
    {
        lock (_queue)
            Monitor.PulseAll(_queue);
    }

    public T Run<T>(Func<T> work)
    {
        if (IsTracerThread)
            return work();
        T result = default!;
        RunQueued(() => result = work());
        return result;
    }

    public void Run(Action work)
    {
        if (IsTracerThread)
            work();
        else
            RunQueued(work);
    }

    private void RunQueued(Action work)
    {
        using var item = new WorkItem(work);
        lock (_queue)
        {
            if (_closed)
                throw new ObjectDisposedException(nameof(Tracer));
            _queue.Enqueue(item);
            Monitor.Pulse(_queue);
        }
        item.Done.Wait();
        item.Error?.Throw();
    }

    /// <summary>Pins the tracer thread to the CPU <paramref name="tid"/> last ran on. A ptrace round trip
    /// across CPUs costs ~200 µs in this VM against ~6-9 µs on one CPU. Only the tracer's affinity changes;
    /// the tracee's is never touched. Best effort: a CPU outside our cpuset is simply not used.</summary>
    public void PinToCpuOf(int tid) => Run(() =>
    {
        int cpu = LastCpu(tid);
        if (cpu < 0 || cpu == _pinnedCpu || cpu >= Sched.MaskWords * 64)
            return;
        _originalAffinity ??= Sched.GetAffinity(0);
        var single = new ulong[Sched.MaskWords];
        single[cpu / 64] = 1UL << (cpu % 64);
        try
        {
            Sched.SetAffinity(0, single);
            _pinnedCpu = cpu;
        }
        catch (SyscallException)
        {
            // CPU outside our cpuset: stay unpinned
        }
    });

    /// <summary>Gives the tracer thread its original affinity back.</summary>
    public void Unpin() => Run(() =>
    {
        if (_originalAffinity != null && _pinnedCpu >= 0)
            Sched.SetAffinity(0, _originalAffinity);
        _pinnedCpu = -1;
    });

    /// <summary>CPU <paramref name="tid"/> last ran on (stat field 39), -1 if it is gone.</summary>
    internal static int LastCpu(int tid)
    {
        try
        {
            return ProcStat.Read(tid).Processor;
        }
        catch (Exception e) when (e is DirectoryNotFoundException or FileNotFoundException or IOException or FormatException)
        {
            return -1;
        }
    }

    /// <summary>Consumes the exit of each (killed) task, in order, on the tracer thread: a traced task is
    /// reported to its tracer first and stays a zombie until then. Returns when each is dead or not ours.</summary>
    public void Reap(IEnumerable<int> tids) => Run(() =>
    {
        foreach (int tid in tids)
            while (Wait.TryWaitPid(tid, out var status, Wait.WALL) > 0 && !status.Dead) { }
    });

    /// <summary>As <see cref="Reap"/>, but gives up on a task not dead within <paramref name="limit"/> (all of them
    /// together): a killed task that cannot die (frozen by a cgroup, stuck in the kernel) must not hang crisp.
    /// Returns the tids still not reaped.</summary>
    public List<int> ReapWithin(IEnumerable<int> tids, TimeSpan limit) => Run(() =>
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var left = new List<int>();
        foreach (int tid in tids)
        {
            while (true)
            {
                int r = Wait.TryWaitPid(tid, out var status, Wait.WALL | Wait.WNOHANG);
                if (r < 0 || r > 0 && status.Dead)
                    break;
                if (r > 0)
                    continue;
                if (clock.Elapsed > limit)
                {
                    left.Add(tid);
                    break;
                }
                Thread.Sleep(clock.ElapsedMilliseconds < 50 ? 0 : 5);
            }
        }
        return left;
    });

    public void Dispose()
    {
        if (_thread == Thread.CurrentThread)
            throw new InvalidOperationException("the tracer cannot dispose itself from its own thread");
        lock (_queue)
        {
            _closed = true;
            Monitor.Pulse(_queue);
        }
        _thread.Join();
    }

    private void Loop()
    {
        ThreadId = (int)RawSyscall.Call("gettid", Sysno.gettid);
        t_current = this;
        _started.Set();
        while (true)
        {
            WorkItem item;
            lock (_queue)
            {
                while (_queue.Count == 0 && !_closed)
                    Monitor.Wait(_queue);
                if (_queue.Count == 0)
                    return;
                item = _queue.Dequeue();
            }
            Execute(item);
        }
    }

    private static void Execute(WorkItem item)
    {
        try
        {
            item.Work();
        }
        catch (Exception e)
        {
            item.Error = ExceptionDispatchInfo.Capture(e);
        }
        item.Done.Set();
    }

    /// <summary>With SIGCHLD ignored the kernel auto-reaps children and their exit status is lost.</summary>
    private static unsafe void EnsureSigchldNotIgnored()
    {
        // struct kernel_sigaction: handler, flags, restorer, mask (8 bytes each).
        ulong* old = stackalloc ulong[4];
        RawSyscall.Call("rt_sigaction(SIGCHLD)", Sysno.rt_sigaction, Signals.SIGCHLD, 0, (long)old, 8);
        if (old[0] == 1 /* SIG_IGN */)
        {
            ulong* dfl = stackalloc ulong[4];
            RawSyscall.Call("rt_sigaction(SIGCHLD, SIG_DFL)", Sysno.rt_sigaction, Signals.SIGCHLD, (long)dfl, 0, 8);
        }
    }

    private sealed class WorkItem(Action work) : IDisposable
    {
        public Action Work { get; } = work;
        public ManualResetEventSlim Done { get; } = new(false, spinCount: 0);
        public ExceptionDispatchInfo? Error { get; set; }
        public void Dispose() => Done.Dispose();
    }
}
