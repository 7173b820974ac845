using System.Runtime.InteropServices;
using Crisp.Linux.Proc;
using Crisp.Linux;

namespace Crisp.Compel.Puppets;

/// <summary>A blank task crisp shapes into a restored one by remote syscalls. The first is spawned from
/// the <see cref="PuppetElf"/> program; every other one is cloned inside an existing puppet with
/// clone3 + set_tid, so it gets its PID and its parent right. Puppets are traced with EXITKILL: if crisp
/// dies mid-restore they die too, and nothing half-built is left.</summary>
public sealed class Puppet : IDisposable
{
    /// <summary>Options every puppet is traced with; auto-attached children inherit them.</summary>
    public const PtraceOptions Options = PtraceOptions.ExitKill | PtraceOptions.TraceFork | PtraceOptions.TraceClone
        | PtraceOptions.TraceVfork;

    private readonly Seizer _seizer;
    private RemoteTask? _remote;

    public int Pid => Thread.Pid;
    public SeizedThread Thread { get; }
    public Tracer Tracer => _seizer.Tracer;

    /// <summary>Remote syscalls through the puppet's own gadget, pointer arguments on its data page.</summary>
    public RemoteTask Remote => _remote ??= new RemoteTask(Thread, pinTracer: false,
        gadgetAddress: PuppetElf.SyscallGadgetAddress, scratchDataAddress: PuppetElf.DataAddress,
        scratchDataSize: (int)PuppetElf.DataSize,
        batchAddress: PuppetElf.SyscallBatchAddress);

    private Puppet(Seizer seizer, SeizedThread thread)
    {
        _seizer = seizer;
        Thread = thread;
    }

    /// <summary>Starts the first puppet as a child of crisp, from a memfd holding the puppet program,
    /// and seizes it once it spins at its entry point.</summary>
    public static Puppet Spawn(Seizer seizer)
    {
        using var memfd = Memfd.Create("crisp-puppet", Memfd.MFD_CLOEXEC);
        FileIo.WriteExactly(memfd.Fd, PuppetElf.Build());
        int pid = Linux.Spawn.Start($"/proc/self/fd/{memfd.Fd}", ["crisp-puppet"]);
        try
        {
            WaitUntilAtEntry(pid);
            var process = seizer.SeizeProcess(pid, SeccompSuspend.Always, Options);
            return new Puppet(seizer, process.Leader);
        }
        catch
        {
            Signals.TryKill(pid);
            seizer.Tracer.Run(() => Linux.Spawn.TryReap(pid));
            throw;
        }
    }

    /// <summary>Starts a puppet with PID <paramref name="pid"/> as a child of crisp's parent (a sibling of
    /// crisp, --restore-sibling), so the caller that started crisp can wait for the restored root. With
    /// <paramref name="namespaceFlags"/> (CLONE_NEW*) it starts in new namespaces; with CLONE_NEWPID it is PID 1
    /// there, <paramref name="pid"/> is not asked for and the host numbers it as it likes.</summary>
    public static Puppet SpawnSibling(Seizer seizer, int pid, ulong namespaceFlags = 0)
    {
        using var memfd = Memfd.Create("crisp-puppet", Memfd.MFD_CLOEXEC);
        FileIo.WriteExactly(memfd.Fd, PuppetElf.Build());
        bool newPidNs = (namespaceFlags & Clone3.CLONE_NEWPID) != 0;
        int started = SiblingSpawn.Start($"/proc/self/fd/{memfd.Fd}", ["crisp-puppet"], [], newPidNs ? 0 : pid, namespaceFlags);
        try
        {
            WaitUntilAtEntry(started);
            var process = seizer.SeizeProcess(started, SeccompSuspend.Always, Options);
            return new Puppet(seizer, process.Leader);
        }
        catch
        {
            // Not our child: crisp's parent reaps it.
            Signals.TryKill(started);
            throw;
        }
    }

    /// <summary>Clones a new puppet with PID <paramref name="pid"/> inside this one (the PID in this puppet's
    /// pid namespace; the puppet's <see cref="Pid"/> is the host's). With <paramref name="sibling"/> the new
    /// task becomes a child of this puppet's parent (CLONE_PARENT). With <paramref name="namespaceFlags"/>
    /// (CLONE_NEW*) it starts in new namespaces; with CLONE_NEWPID it is PID 1 of the new one.</summary>
    public Puppet Clone(int pid, bool sibling = false, ulong namespaceFlags = 0)
    {
        // clone3 refuses an exit signal with CLONE_PARENT; the caller's own (SIGCHLD) is used.
        ulong flags = (sibling ? Clone3.CLONE_PARENT : 0) | namespaceFlags;
        int host = (namespaceFlags & Clone3.CLONE_NEWPID) != 0
            ? CloneNewPidNamespace(flags, sibling ? 0 : (ulong)Signals.SIGCHLD)
            : CloneWithId(flags, sibling ? 0 : (ulong)Signals.SIGCHLD, [pid], pid, "PID");
        return new Puppet(_seizer, _seizer.Adopt(host, host, Thread.Options));
    }

    /// <summary>Clones a child whose pid is set at several pid namespace levels: <paramref name="pids"/> from the
    /// outermost level asked for down to the child's own (a child in a nested pid namespace, made after this
    /// puppet unshared CLONE_NEWPID or inside one). <paramref name="returned"/> is the pid this puppet's own
    /// namespace gives it.</summary>
    public Puppet Clone(IReadOnlyList<int> pids, int returned)
    {
        int host = CloneWithId(0, (ulong)Signals.SIGCHLD, [.. pids.Reverse()], returned, "PID");
        return new Puppet(_seizer, _seizer.Adopt(host, host, Thread.Options));
    }

    /// <summary>Flags of a thread made inside a puppet: everything a pthread shares.</summary>
    public const ulong ThreadFlags = Clone3.CLONE_VM | Clone3.CLONE_FS | Clone3.CLONE_FILES | Clone3.CLONE_SIGHAND
        | Clone3.CLONE_THREAD | Clone3.CLONE_SYSVSEM;

    /// <summary>Makes thread <paramref name="tid"/> in this puppet by clone3(CLONE_THREAD…, set_tid). The new
    /// thread never runs the puppet's code: it arrives auto-attached (PTRACE_EVENT_CLONE on this puppet) and
    /// is taken in its first stop, with every signal blocked (inherited from the puppet mid-injection).</summary>
    public SeizedThread CloneThread(int tid) => CloneThread([tid]);

    /// <summary>As <see cref="CloneThread(int)"/> for a thread of a task in a nested pid namespace: its
    /// <paramref name="tids"/> from the tree's level down to its own.</summary>
    public SeizedThread CloneThread(IReadOnlyList<int> tids)
    {
        int host = CloneWithId(ThreadFlags, 0, [.. tids.Reverse()], tids[^1], "TID");
        return _seizer.Adopt(Pid, host, Thread.Options);
    }

    /// <summary>Remote clone3 with set_tid = <paramref name="ids"/>, innermost level first (the new task's own
    /// namespace; levels beyond are left to the kernel). <paramref name="returned"/> is the id clone3 must return
    /// (this puppet's namespace's). Returns the new task's id as crisp's namespace numbers it.</summary>
    private unsafe int CloneWithId(ulong flags, ulong exitSignal, int[] ids, int returned, string what)
    {
        var args = new CloneArgs
        {
            Flags = flags,
            ExitSignal = exitSignal,
            SetTid = PuppetElf.DataAddress + (ulong)sizeof(CloneArgs),
            SetTidSize = (ulong)ids.Length,
        };
        var buffer = new byte[sizeof(CloneArgs) + sizeof(int) * ids.Length];
        MemoryMarshal.Write(buffer, in args);
        MemoryMarshal.Cast<int, byte>(ids.AsSpan()).CopyTo(buffer.AsSpan(sizeof(CloneArgs)));
        ulong at = Remote.PutOnScratch(buffer);
        long r = Remote.Syscall(Sysno.clone3, (long)at, sizeof(CloneArgs));
        string named = ids.Length == 1 ? $"{ids[0]}" : $"{string.Join('/', ids.Reverse())} (tree's level first)";
        if (r < 0)
            throw r == -Errnos.EEXIST
                ? new CrispException($"{what} {named} is already in use")
                : new SyscallException($"clone3(flags=0x{flags:x}, set_tid={named}) in puppet {Pid}", (int)-r);
        if (r != returned)
            throw new CrispException($"clone3 in puppet {Pid} gave {what} {r}, not {returned}");
        return HostIdOfNewTask(r);
    }

    /// <summary>Remote clone3 with CLONE_NEWPID: the child is PID 1 of a new pid namespace, so no set_tid.</summary>
    private unsafe int CloneNewPidNamespace(ulong flags, ulong exitSignal)
    {
        var args = new CloneArgs { Flags = flags, ExitSignal = exitSignal };
        var buffer = new byte[sizeof(CloneArgs)];
        MemoryMarshal.Write(buffer, in args);
        ulong at = Remote.PutOnScratch(buffer);
        long r = Remote.Syscall(Sysno.clone3, (long)at, sizeof(CloneArgs));
        if (r < 0)
            throw new SyscallException($"clone3(flags=0x{flags:x}) in puppet {Pid}", (int)-r);
        return HostIdOfNewTask(r);
    }

    /// <summary>The new task's id in crisp's pid namespace: the fork event's message (clone3's result is the id
    /// in the caller's namespace, which differs once the caller is inside a new one).</summary>
    private int HostIdOfNewTask(long returned) => Remote.LastNewTask > 0 ? Remote.LastNewTask : (int)returned;

    /// <summary>Remote syscalls in another thread of this puppet (one made by <see cref="CloneThread"/>),
    /// through the same gadget and data pages (calls are serialised on the tracer thread).</summary>
    public RemoteTask RemoteFor(SeizedThread thread) => new(thread, pinTracer: false,
        gadgetAddress: PuppetElf.SyscallGadgetAddress, scratchDataAddress: PuppetElf.DataAddress,
        scratchDataSize: (int)PuppetElf.DataSize,
        batchAddress: PuppetElf.SyscallBatchAddress);

    /// <summary>Runs a syscall in the puppet and throws, naming it, when it fails.</summary>
    public long Call(string name, long nr, long a1 = 0, long a2 = 0, long a3 = 0, long a4 = 0, long a5 = 0, long a6 = 0)
        => Remote.Call(name, nr, a1, a2, a3, a4, a5, a6);

    /// <summary>Turns the puppet into a program: execve by remote syscall (signal mask emptied first, since
    /// exec keeps it), waits for the exec event, then lets the task go. Throws when execve fails.</summary>
    public void Exec(string path, IReadOnlyList<string> argv, IReadOnlyList<string> envp)
    {
        var (buffer, pathAt, argvAt, envpAt) = ExecArguments.Layout(PuppetElf.DataAddress, path, argv, envp);
        Remote.PutOnScratch(buffer);
        int tid = Thread.Tid;
        Tracer.Run(() =>
        {
            var regs = Ptrace.GetRegs(tid).WithSyscall(PuppetElf.SyscallGadgetAddress, Sysno.execve, (long)pathAt, (long)argvAt, (long)envpAt);
            Ptrace.SetOptions(tid, Thread.Options | PtraceOptions.TraceExec);
            Ptrace.SetSigMask(tid, 0);
            Ptrace.SetRegs(tid, regs);
            Ptrace.Cont(tid, 0);
            while (true)
            {
                Wait.WaitPid(tid, out var status, Wait.WALL);
                if (status.Dead)
                    throw new CrispException($"puppet {Pid} died in execve({path}): {status}");
                if (status.Stopped && status.Event == PtraceEvent.Exec)
                    break;
                if (status.Stopped && status.Event == 0 && status.StopSignal == Signals.SIGTRAP)
                {
                    long r = Ptrace.GetRegs(tid).SyscallResult;
                    throw new SyscallException($"execve({path}) in puppet {Pid}", (int)-r);
                }
                Ptrace.Cont(tid, 0);
            }
            Ptrace.Detach(tid);
            Thread.IsDetached = true;
        });
        _remote?.Abandon();
        _remote = null;
    }

    /// <summary>Makes the puppet end with wait status <paramref name="status"/> (as /proc/PID/stat's exit_code
    /// and CRIU's core.tc.exit_code hold it): exit_group with the code, or death by the signal (its default
    /// action, core dumps off). crisp, as its tracer, collects the exit first; the kernel then hands the zombie
    /// to its real parent, which sees the same status. Returns the status crisp saw.</summary>
    public WaitStatus ExitWith(uint status)
    {
        int signal = (int)(status & 0x7f), code = (int)((status >> 8) & 0xff);
        if (signal != 0)
        {
            // Only a fatal signal can make a zombie; CRIU substitutes SIGABRT for anything else.
            if (signal is Signals.SIGCHLD or Signals.SIGCONT or Signals.SIGSTOP or Signals.SIGTSTP or Signals.SIGTTIN
                or Signals.SIGTTOU or Signals.SIGURG or Signals.SIGWINCH or > Signals.SIGRTMAX)
                signal = Signals.SIGABRT;
            // No core file from a re-enacted death (so the 0x80 "core dumped" bit cannot come back either).
            Call("prctl(PR_SET_DUMPABLE, 0)", Sysno.prctl, 4, 0);
            if (signal != Signals.SIGKILL)
                Call("rt_sigaction(SIG_DFL)", Sysno.rt_sigaction, signal, (long)Remote.PutOnScratch(new byte[32]), 0, 8);
        }
        int tid = Thread.Tid;
        var result = Tracer.Run(() =>
        {
            var regs = Ptrace.GetRegs(tid);
            Ptrace.SetSigMask(tid, 0);
            if (signal == 0)
                Ptrace.SetRegs(tid, regs.WithSyscall(PuppetElf.SyscallGadgetAddress, Sysno.exit_group, code));
            else
                RawSyscall.TryCall(Sysno.tgkill, Pid, tid, signal);
            Ptrace.Cont(tid, 0);
            while (true)
            {
                Wait.WaitPid(tid, out var st, Wait.WALL);
                if (st.Dead)
                    return st;
                // The signal we sent reaches its signal-delivery stop: let it act; drop anything else.
                int deliver = st.Stopped && st.Event == 0 && st.StopSignal == signal ? signal : 0;
                Ptrace.Cont(tid, deliver);
            }
        });
        Thread.IsDetached = true;
        _remote?.Abandon();
        _remote = null;
        return result;
    }

    /// <summary>munmap of the puppet program's pages, run as the thread's last syscall in the two-stop form
    /// (stopping at the syscall's exit, where rip is no longer needed). Its registers are then whatever the
    /// caller gives the task. Stray signals on the way are dropped.</summary>
    public void UnmapOwnPages()
    {
        int tid = Thread.Tid;
        long result = Tracer.Run(() =>
        {
            var regs = Ptrace.GetRegs(tid).WithSyscall(PuppetElf.SyscallGadgetAddress, Sysno.munmap,
                (long)PuppetElf.BaseAddress, (long)(PuppetElf.End - PuppetElf.BaseAddress));
            var after = SyscallStops.Run(tid, regs, status => new CrispException($"task {tid} died while being released ({status})"));
            return after.SyscallResult;
        });
        if (result != 0)
            throw new SyscallException($"munmap of the puppet pages in task {tid}", (int)-result);
    }

    /// <summary>Kills the puppet (SIGKILL) and, when it is crisp's own child, reaps it.</summary>
    public void Kill()
    {
        Signals.TryKill(Pid);
        Tracer.Reap([Pid]);   // a traced task is reaped by its tracer first; its real parent (if crisp) gets it after
    }

    public void Dispose() => _remote?.Dispose();

    private static void WaitUntilAtEntry(int pid)
    {
        string prefix = $"{PuppetElf.BaseAddress:x8}-";
        long started = System.Diagnostics.Stopwatch.GetTimestamp();
        for (var waited = TimeSpan.Zero; waited < TimeSpan.FromSeconds(5); waited = System.Diagnostics.Stopwatch.GetElapsedTime(started))
        {
            try
            {
                if (File.ReadLines(Procfs.Host.Path(pid, "maps")).FirstOrDefault()?.StartsWith(prefix, StringComparison.Ordinal) == true)
                    return;
            }
            catch (IOException) { }
            // posix_spawn returns once the child's exec has replaced its memory, before the program is mapped:
            // it is mapped a fraction of a millisecond later, and a 1 ms sleep was a millisecond of every restore.
            if (waited < TimeSpan.FromMilliseconds(5))
                System.Threading.Thread.Yield();
            else
                System.Threading.Thread.Sleep(1);
        }
        throw new CrispException($"puppet {pid} did not start");
    }
}
