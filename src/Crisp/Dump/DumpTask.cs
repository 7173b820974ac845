using Crisp.Compel;
using Crisp.Images.Proto;
using Crisp.Linux.Proc;

namespace Crisp.Dump;

/// <summary>One seized process of the tree being dumped, and the core entries its resources fill in.</summary>
public sealed class DumpTask : IDisposable
{
    private readonly Log? _log;
    private RemoteTask? _remote;

    public DumpTask(SeizedProcess process, DumpTask? parent, Log? log = null)
    {
        _log = log;
        Process = process;
        Parent = parent;
        Stat = ProcStat.Read(process.Pid);
        Status = ProcStatus.Read(process.Pid);
        // The tree's pid namespace is the root's own; a task below it (a nested pid namespace) has more levels.
        TreeLevel = parent?.TreeLevel ?? Math.Max(0, Status.NSpid.Length - 1);
        NestedPids = Below(Status.NSpid, TreeLevel);
        // Inside a pid namespace of its own each thread has a second number, the one the images keep.
        bool nested = Status.NSpid.Length > 1;
        foreach (var t in process.Threads)
        {
            var ns = nested ? ProcStatus.ReadThread(t.Pid, t.Tid).NSpid : [];
            Threads.Add(new DumpThread(t, NewCore(), AtLevel(ns, TreeLevel, t.Tid), Below(ns, TreeLevel)));
        }
    }

    /// <summary>Index in /proc's NS* lists (crisp's namespace first) of the tree's pid namespace, the root's own.</summary>
    public int TreeLevel { get; }
    /// <summary>Its pids in pid namespaces nested below the tree's, outermost first (pstree.img's crisp ns_pids);
    /// empty for a task in the tree's namespace.</summary>
    public int[] NestedPids { get; }

    /// <summary>The entry of a /proc NS* list at <paramref name="level"/>, <paramref name="host"/> when the kernel
    /// shows none.</summary>
    public static int AtLevel(int[] perNamespace, int level, int host)
        => perNamespace.Length == 0 ? host : perNamespace[Math.Min(level, perNamespace.Length - 1)];

    /// <summary>The entries of a /proc NS* list below <paramref name="level"/>.</summary>
    public static int[] Below(int[] perNamespace, int level) => perNamespace.Length > level + 1 ? perNamespace[(level + 1)..] : [];

    /// <summary>The task's PID in crisp's pid namespace: for ptrace, /proc and kcmp.</summary>
    public int Pid => Process.Pid;
    /// <summary>The task's PID in the tree's pid namespace (NSpid at <see cref="TreeLevel"/>; its own, the last,
    /// unless it is in a nested one), as the images number it (CRIU's virtual pid); equal to <see cref="Pid"/>
    /// when the tree shares crisp's pid namespace.</summary>
    public int VirtualPid => AtLevel(Status.NSpid, TreeLevel, Pid);
    /// <summary>Its process group and session as the tree's pid namespace numbers them (0 when the leader is
    /// outside that namespace).</summary>
    public int VirtualPgid => AtLevel(Status.NSpgid, TreeLevel, Stat.Pgrp);
    public int VirtualSid => AtLevel(Status.NSsid, TreeLevel, Stat.Session);

    /// <summary>The innermost of a /proc NS* list (the task's own namespace), <paramref name="host"/> when the
    /// kernel shows none.</summary>
    public static int Innermost(int[] perNamespace, int host) => perNamespace.Length > 0 ? perNamespace[^1] : host;
    public SeizedProcess Process { get; }
    public DumpTask? Parent { get; }
    public List<DumpTask> Children { get; } = [];
    /// <summary>Exited children it has not reaped: written to pstree.img and core-PID.img only.</summary>
    public List<DumpZombie> Zombies { get; } = [];
    /// <summary>/proc/PID/stat and status as read right after the seize.</summary>
    public ProcStat Stat { get; }
    public ProcStatus Status { get; }

    /// <summary>Threads, leader first; each with the core entry written as core-TID.img.</summary>
    public List<DumpThread> Threads { get; } = [];
    public DumpThread Leader => Threads.First(t => t.Tid == Pid);

    /// <summary>The process-wide part of the core (task_core_entry), kept in the leader's core.</summary>
    public task_core_entry TaskCore => Leader.Core.Tc;

    /// <summary>Remote syscalls in the leader, opened on first use and closed (registers put back) on Dispose.</summary>
    public RemoteTask Remote => _remote ??= new RemoteTask(Process.Leader, log: _log);

    private readonly Dictionary<int, RemoteTask> _threadRemotes = [];

    /// <summary>Remote syscalls in one of its threads: the leader's <see cref="Remote"/>, or one opened for the thread
    /// on first use and kept until <see cref="Dispose"/>, borrowing the leader's scratch page. Three stages call into
    /// every thread; parking a thread, mapping a scratch page and putting both back once per stage cost a 100-thread
    /// task ~1,000 stops.</summary>
    public RemoteTask RemoteOf(DumpThread thread)
    {
        if (thread.Tid == Pid)
            return Remote;
        if (!_threadRemotes.TryGetValue(thread.Tid, out var remote))
        {
            ulong scratch = Remote.ScratchData != 0 ? Remote.ScratchData : Remote.PutOnScratch([]);
            _threadRemotes[thread.Tid] = remote = new RemoteTask(thread.Thread, log: _log,
                scratchDataAddress: scratch, scratchDataSize: Remote.ScratchDataSize, crashSafeBatchPages: Remote.CrashSafeBatchPages());
        }
        return remote;
    }

    /// <summary>Every range crisp mapped in the task for its remote calls (the leader's scratch, batch pages of the
    /// leader and of each thread's remote): the memory stage leaves them out.</summary>
    public IReadOnlyList<(ulong Start, ulong Length)> OwnedRanges =>
        new[] { Remote.OwnedScratch, Remote.OwnedBatchPages }.Concat(_threadRemotes.Values.Select(r => r.OwnedBatchPages))
            .OfType<(ulong Start, ulong Length)>().ToList();

    private readonly Dictionary<int, Resources.TaskState.ThreadAnswers> _answers = [];

    /// <summary>The thread's own answers (tid address, pdeath signal, timer slack, altstack), asked in one batch
    /// through <see cref="RemoteOf"/> the first time a stage needs one (the tree is frozen: they do not change).</summary>
    public Resources.TaskState.ThreadAnswers AnswersOf(DumpThread thread)
    {
        if (!_answers.TryGetValue(thread.Tid, out var answers))
            _answers[thread.Tid] = answers = Resources.TaskState.ThreadAnswers.Ask(RemoteOf(thread), thread.Tid);
        return answers;
    }

    /// <summary>Runs a remote syscall in the leader; throws naming it when it fails.</summary>
    public long Call(string name, long nr, long a1 = 0, long a2 = 0, long a3 = 0, long a4 = 0, long a5 = 0, long a6 = 0)
        => Remote.Call(name, nr, a1, a2, a3, a4, a5, a6);

    /// <summary>Puts the leader's registers back (ends remote syscalls); the task stays seized.</summary>
    public void Dispose()
    {
        try
        {
            // The threads first: they use the leader's scratch page, which the leader's Dispose unmaps.
            foreach (var remote in _threadRemotes.Values)
                remote.Dispose();
            _threadRemotes.Clear();
        }
        finally
        {
            _remote?.Dispose();
            _remote = null;
        }
    }

    private static core_entry NewCore() => new()
    {
        Mtype = core_entry.Types.march.X8664,
        ThreadCore = new thread_core_entry(),
    };
}

/// <summary>One thread of a dumped process and its core entry.</summary>
public sealed class DumpThread(SeizedThread thread, core_entry core, int virtualTid, int[]? nestedTids = null)
{
    /// <summary>Its ids in pid namespaces nested below the tree's (pstree.img's crisp ns_tids).</summary>
    public int[] NestedTids { get; } = nestedTids ?? [];
    /// <summary>The thread's id in crisp's pid namespace.</summary>
    public int Tid => Thread.Tid;
    /// <summary>Its id in the tree's pid namespace: core-TID.img and pstree.img use this one.</summary>
    public int VirtualTid { get; } = virtualTid;
    public SeizedThread Thread { get; } = thread;
    public core_entry Core { get; } = core;
}
