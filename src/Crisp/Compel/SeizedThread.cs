using Crisp.Linux;
using Crisp.Linux.Proc;

namespace Crisp.Compel;

/// <summary>A thread crisp holds in a ptrace-stop. Created only by <see cref="Seizer"/>; the constructor
/// records the seccomp mode, so every seize path records it (the CRIU bug this project grew from was
/// a seize path that skipped that record).</summary>
public sealed class SeizedThread
{
    public int Pid { get; }
    public int Tid { get; }

    /// <summary>Seccomp mode at seize time: 0 none, 1 strict, 2 filter (-1 if /proc could not tell).</summary>
    public int SeccompMode { get; }

    /// <summary>The thread was in group-stop (SIGSTOP/SIGTSTP/…) when seized; detach leaves it stopped.</summary>
    public bool WasGroupStopped { get; }

    /// <summary>The stop signal of that group-stop, 0 if it was running.</summary>
    public int GroupStopSignal { get; }

    /// <summary>Options in effect (PTRACE_O_*).</summary>
    public PtraceOptions Options { get; internal set; }

    public bool IsDetached { get; internal set; }

    internal SeizedThread(int pid, int tid, PtraceOptions options, int groupStopSignal)
    {
        Pid = pid;
        Tid = tid;
        Options = options;
        GroupStopSignal = groupStopSignal;
        WasGroupStopped = groupStopSignal != 0;
        SeccompMode = ReadSeccompMode(pid, tid);
    }

    /// <summary>"Seccomp:" of the thread's status: 0 off, 1 strict, 2 filter; -1 if unreadable.</summary>
    private static int ReadSeccompMode(int pid, int tid)
    {
        try
        {
            var status = ProcStatus.ReadThread(pid, tid);
            return status.Fields.ContainsKey("Seccomp") ? status.Seccomp : -1;
        }
        catch (Exception e) when (e is DirectoryNotFoundException or FileNotFoundException or IOException or FormatException)
        {
            return -1;
        }
    }

    public override string ToString() =>
        $"thread {Tid} of {Pid} (seccomp {SeccompMode}{(WasGroupStopped ? ", group-stopped" : "")})";
}

/// <summary>All threads of one process, seized.</summary>
public sealed class SeizedProcess : IDisposable
{
    private readonly Seizer _seizer;

    public int Pid { get; }
    public IReadOnlyList<SeizedThread> Threads { get; }

    /// <summary>The thread group leader (tid == pid), or the first thread if the leader is gone.</summary>
    public SeizedThread Leader => Threads.FirstOrDefault(t => t.Tid == Pid) ?? Threads[0];

    /// <summary>The process was stopped by a stop signal when seized.</summary>
    public bool WasGroupStopped => Threads.Any(t => t.WasGroupStopped);

    internal SeizedProcess(Seizer seizer, int pid, IReadOnlyList<SeizedThread> threads)
    {
        _seizer = seizer;
        Pid = pid;
        Threads = threads;
    }

    /// <summary>Detaches every thread, leaving each as it was found (running, or group-stopped).</summary>
    public void Detach()
    {
        foreach (var t in Threads)
            _seizer.Detach(t);
    }

    public void Dispose() => Detach();
}
