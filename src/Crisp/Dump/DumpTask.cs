using Crisp.Compel;
using Crisp.Images.Proto;
using Crisp.Linux.Proc;

namespace Crisp.Dump;

/// <summary>One seized process of the tree being dumped, and the core entries its resources fill in.</summary>
public sealed class DumpTask : IDisposable
{
    private readonly Tracer _tracer;
    private readonly Log? _log;
    private RemoteTask? _remote;

    public DumpTask(Tracer tracer, SeizedProcess process, DumpTask? parent, Log? log = null)
    {
        _tracer = tracer;
        _log = log;
        Process = process;
        Parent = parent;
        Stat = ProcStat.Read(process.Pid);
        Status = ProcStatus.Read(process.Pid);
        foreach (var t in process.Threads)
            Threads.Add(new DumpThread(t, NewCore()));
    }

    public int Pid => Process.Pid;
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
    public RemoteTask Remote => _remote ??= new RemoteTask(_tracer, Process.Leader, log: _log);

    /// <summary>Runs a remote syscall in the leader; throws naming it when it fails.</summary>
    public long Call(string name, long nr, long a1 = 0, long a2 = 0, long a3 = 0, long a4 = 0, long a5 = 0, long a6 = 0)
        => Remote.Call(name, nr, a1, a2, a3, a4, a5, a6);

    /// <summary>Puts the leader's registers back (ends remote syscalls); the task stays seized.</summary>
    public void Dispose()
    {
        _remote?.Dispose();
        _remote = null;
    }

    private static core_entry NewCore() => new()
    {
        Mtype = core_entry.Types.march.X8664,
        ThreadCore = new thread_core_entry(),
    };
}

/// <summary>One thread of a dumped process and its core entry.</summary>
public sealed class DumpThread(SeizedThread thread, core_entry core)
{
    public int Tid => Thread.Tid;
    public SeizedThread Thread { get; } = thread;
    public core_entry Core { get; } = core;
}
