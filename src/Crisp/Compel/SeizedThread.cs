using Crisp.Linux;
using Crisp.Linux.Proc;

namespace Crisp.Compel;

/// <summary>A thread crisp holds in a ptrace-stop. Created only by <see cref="Seizer"/>; the constructor
/// records the seccomp mode, so every seize path records it (the CRIU bug this project grew from was
/// a seize path that skipped that record). Its operations are the only ptrace requests the rest of crisp
/// can make, and each moves itself onto the <see cref="Tracer"/> thread that seized it (the kernel answers
/// ESRCH to any other thread); called from the tracer thread they run inline.</summary>
public sealed class SeizedThread
{
    private readonly Tracer _tracer;

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

    internal SeizedThread(Tracer tracer, int pid, int tid, PtraceOptions options, int groupStopSignal)
    {
        _tracer = tracer;
        Pid = pid;
        Tid = tid;
        Options = options;
        GroupStopSignal = groupStopSignal;
        WasGroupStopped = groupStopSignal != 0;
        SeccompMode = ReadSeccompMode(pid, tid);
    }

    /// <summary>The tracer thread this thread is bound to.</summary>
    public Tracer Tracer => _tracer;

    /// <summary>General-purpose registers.</summary>
    public UserRegs GetRegs() => _tracer.Run(() => Ptrace.GetRegs(Tid));

    public void SetRegs(UserRegs regs) => _tracer.Run(() => Ptrace.SetRegs(Tid, regs));

    /// <summary>The blocked-signal mask (bit n-1 = signal n).</summary>
    public ulong GetSigMask() => _tracer.Run(() => Ptrace.GetSigMask(Tid));

    public void SetSigMask(ulong mask) => _tracer.Run(() => Ptrace.SetSigMask(Tid, mask));

    /// <summary>One word of the task's memory (PTRACE_PEEKDATA).</summary>
    public ulong PeekData(ulong address) => _tracer.Run(() => Ptrace.PeekData(Tid, address));

    /// <summary>The XSAVE area (standard layout, length as the kernel reports it).</summary>
    public byte[] GetXstate() => _tracer.Run(() => Ptrace.GetXstate(Tid));

    public void SetXstate(byte[] area) => _tracer.Run(() => Ptrace.SetXstate(Tid, area));

    /// <summary>The 512-byte FXSAVE area (x87 + SSE).</summary>
    public byte[] GetFpregs() => _tracer.Run(() => Ptrace.GetFpregs(Tid));

    public void SetFpregs(byte[] area) => _tracer.Run(() => Ptrace.SetFpregs(Tid, area));

    /// <summary>The seccomp filter at <paramref name="index"/> (0 = oldest) as raw sock_filter instructions
    /// (8 bytes each); null past the last one.</summary>
    public byte[]? SeccompFilter(int index) => _tracer.Run(() => Ptrace.SeccompGetFilter(Tid, index));

    /// <summary>The flags that filter was installed with (PTRACE_SECCOMP_GET_METADATA).</summary>
    public ulong SeccompFilterFlags(int index) => _tracer.Run(() => Ptrace.SeccompGetMetadata(Tid, index).Flags);

    /// <summary>The thread's rseq registration (PTRACE_GET_RSEQ_CONFIGURATION); a zero pointer when none.</summary>
    public RseqConfiguration RseqConfiguration() => _tracer.Run(() => Ptrace.GetRseqConfiguration(Tid));

    /// <summary>Copies queued siginfos from <paramref name="offset"/> on into <paramref name="buffer"/> without
    /// dequeuing them (PTRACE_PEEKSIGINFO; <paramref name="shared"/>: the process-wide queue); returns how many.</summary>
    public int PeekSigInfo(ulong offset, bool shared, byte[] buffer) => _tracer.Run(() => Ptrace.PeekSigInfo(Tid, offset, shared, buffer));

    /// <summary>Replaces the ptrace options in effect.</summary>
    public void SetOptions(PtraceOptions options) => _tracer.Run(() =>
    {
        Ptrace.SetOptions(Tid, options);
        Options = options;
    });

    /// <summary>PTRACE_DETACH of a thread whose registers are already what it must resume with; throws when
    /// it fails (<see cref="Seizer.Detach"/> is the forgiving form that leaves a dumped task as it was).</summary>
    public void Detach() => _tracer.Run(() =>
    {
        Ptrace.Detach(Tid);
        IsDetached = true;
    });

    /// <summary>"Seccomp:" of the thread's status: 0 off, 1 strict, 2 filter; -1 if unreadable.</summary>
    private static int ReadSeccompMode(int pid, int tid)
    {
        try
        {
            var status = ProcStatus.ReadThread(pid, tid);
            return status.HasSeccomp ? status.Seccomp : -1;
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
