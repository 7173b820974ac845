using Crisp.Compel;
using Crisp.Linux;
using Crisp.Linux.Proc;
using Crisp.Tests.Support;

namespace Crisp.Tests.Compel;

/// <summary>Remote syscalls in a dumped task are crash-safe: a thread crisp lets go without putting
/// anything back (what the kernel does when crisp dies: it detaches the tracees as they are) runs
/// rt_sigreturn from the trampoline and carries on with its own registers, FPU state and signal mask.
/// "Dying" here is a raw PTRACE_DETACH of the parked thread; the CLI kill test is in Reliability.</summary>
[Collection("compel")]
public sealed class CrashSafeRemoteTests
{
    private const int SIGUSR1 = 10, SIGRT = 40;
    private static Tracer Tracer => TestTracer.Shared;
    private static readonly Seizer Seizer = new(TestTracer.Shared);

    /// <summary>Runs a few calls the way a dump does (one needs the scratch page), then lets the thread go
    /// as a dying crisp would.</summary>
    private static void CallsThenDie(SeizedProcess p, Action<RemoteTask>? more = null)
    {
        var remote = new RemoteTask(p.Leader);
        Assert.True(remote.IsCrashSafe, "remote syscalls are not crash-safe here");
        Assert.Equal(p.Pid, remote.Getpid());
        ulong at = remote.PutOnScratch(new byte[8]);
        Assert.Equal(0, remote.Syscall(Sysno.prctl, Prctl.PR_GET_TID_ADDRESS, (long)at));
        more?.Invoke(remote);
        p.Leader.Detach();
        remote.Abandon();
    }

    [RootFact]
    public void AvxRegistersSurviveWhenCrispDies()
    {
        using var w = new TracedWorkload(Tracer, "compel_avx", [], "-mgeneral-regs-only");
        w.ExpectByte('R');
        CallsThenDie(Seizer.SeizeProcess(w.Pid));
        w.Signal(SIGUSR1);
        w.Read(256);
        var status = w.WaitExit();
        Assert.True(status.Exited && status.ExitCode == 0, $"ymm8-15 changed: {status}");
    }

    [RootFact]
    public void RegisterLoopAndPendingSignalSurviveWhenCrispDies()
    {
        using var w = new TracedWorkload(Tracer, "compel_loop", []);
        w.ExpectByte('R');
        // A signal sent while the thread is parked stays pending (all blocked) and is delivered once its
        // own mask is back.
        CallsThenDie(Seizer.SeizeProcess(w.Pid), _ => w.Signal(SIGRT));
        w.ExpectByte('p');
        w.Signal(SIGUSR1);
        Assert.EndsWith("c1;", w.ReadToEnd());
        Assert.Equal(0, w.WaitExit().ExitCode);
    }

    /// <summary>Calls for a crash-safe batch: the thread's pid and tid, eight times over.</summary>
    private static RemoteCall[] PidCalls => [.. Enumerable.Range(0, 16).Select(i => new RemoteCall(i % 2 == 0 ? Sysno.getpid : Sysno.gettid))];

    [RootFact]
    public void ABatchOfCallsRunsCrashSafeAndPutsEverythingBack()
    {
        using var w = new TracedWorkload(Tracer, "compel_loop", []);
        w.ExpectByte('R');
        var p = Seizer.SeizeProcess(w.Pid);
        var regs = p.Leader.GetRegs();
        var maps = ProcMaps.Read(w.Pid).Select(m => (m.Start, m.End)).ToList();
        using (var remote = new RemoteTask(p.Leader))
        {
            Assert.True(remote.IsCrashSafe);
            var results = remote.Syscalls(PidCalls);
            Assert.Equal(Enumerable.Repeat((long)w.Pid, 16), results);   // a one-thread task: pid == tid
            Assert.Equal(2 + 16, remote.CallCount);   // the batch pages (mmap, mprotect), then the table
            // Parked on the trampoline again, and a plain call still works after the batch.
            Assert.Equal(w.Pid, remote.Getpid());
            w.Signal(SIGRT);   // pending while parked, delivered once the thread's own mask is back
        }
        Assert.Equal(regs, p.Leader.GetRegs());
        Assert.Equal(maps, ProcMaps.Read(w.Pid).Select(m => (m.Start, m.End)).ToList());
        p.Detach();
        w.ExpectByte('p');
        w.Signal(SIGUSR1);
        Assert.EndsWith("c1;", w.ReadToEnd());
        Assert.Equal(0, w.WaitExit().ExitCode);
    }

    [RootFact]
    public void ACrispDyingInsideABatchLeavesTheThreadRunningOnAsItWas()
    {
        using var w = new TracedWorkload(Tracer, "compel_loop", []);
        w.ExpectByte('R');
        var p = Seizer.SeizeProcess(w.Pid);
        var remote = new RemoteTask(p.Leader);
        Assert.True(remote.IsCrashSafe);
        Assert.Equal(PidCalls.Length, remote.Syscalls(PidCalls).Length);   // the batch pages are mapped
        w.Signal(SIGRT);
        remote.DetachInsideNextBatch = true;
        Assert.Throws<InvalidOperationException>(() => remote.Syscalls(PidCalls));
        remote.Abandon();
        // Untraced, the thread ran the rest of the table, its tgkill of an ignored signal was dropped, and
        // rt_sigreturn gave it its registers and mask: the pending signal arrives, the register loop checks out.
        w.ExpectByte('p');
        w.Signal(SIGUSR1);
        Assert.EndsWith("c1;", w.ReadToEnd());
        Assert.Equal(0, w.WaitExit().ExitCode);
    }

    [RootFact]
    public void NanosleepCompletesWithoutEintrWhenCrispDies()
    {
        using var w = new TracedWorkload(Tracer, "compel_block", ["sleep", "700"]);
        w.ExpectByte('R');
        Thread.Sleep(100);
        var p = Seizer.SeizeProcess(w.Pid);
        Assert.Equal(UserRegs.ERESTART_RESTARTBLOCK, (long)p.Leader.GetRegs().Rax);
        CallsThenDie(p);
        var status = w.WaitExit();
        Assert.True(status.Exited && status.ExitCode == 0, $"workload: {status} (3 = EINTR leaked, 4 = slept too short)");
    }

    [RootFact]
    public void BlockedReadRestartsWhenCrispDies()
    {
        using var w = new TracedWorkload(Tracer, "compel_block", ["read"]);
        w.ExpectByte('R');
        Thread.Sleep(100);
        var p = Seizer.SeizeProcess(w.Pid);
        Assert.True(p.Leader.GetRegs().InRestartableSyscall);
        CallsThenDie(p);
        w.Write("hello\n");
        Assert.Equal("got:hello\n", w.ReadToEnd());
        Assert.Equal(0, w.WaitExit().ExitCode);
    }

    [RootFact]
    public void DisposePutsVdsoStackAndRegistersBack()
    {
        using var w = new TracedWorkload(Tracer, "compel_loop", []);
        w.ExpectByte('R');
        var p = Seizer.SeizeProcess(w.Pid);
        var regs = p.Leader.GetRegs();
        var vdso = ProcMaps.Read(w.Pid).Single(m => m.Kind == VmaKind.Vdso);
        byte[] vdsoBefore = ReadMem(w.Pid, vdso.Start, (int)vdso.Length);
        const int Below = 8192;
        byte[] stackBefore = ReadMem(w.Pid, regs.Rsp - Below, Below);
        ulong scratch;
        using (var remote = new RemoteTask(p.Leader))
        {
            Assert.True(remote.IsCrashSafe);
            for (int i = 0; i < 20; i++)
                Assert.Equal(w.Pid, remote.Getpid());
            scratch = remote.PutOnScratch("x"u8);
            // While open: code in the vdso tail, the frame below the red zone, the thread parked on them.
            Assert.NotEqual(vdsoBefore, ReadMem(w.Pid, vdso.Start, (int)vdso.Length));
            Assert.NotEqual(stackBefore, ReadMem(w.Pid, regs.Rsp - Below, Below));
            var parked = p.Leader.GetRegs();
            Assert.InRange(parked.Rip, vdso.Start, vdso.End - 1);
            Assert.True(parked.Rsp < regs.Rsp - 128);
        }
        Assert.Equal(vdsoBefore, ReadMem(w.Pid, vdso.Start, (int)vdso.Length));
        Assert.Equal(stackBefore, ReadMem(w.Pid, regs.Rsp - Below, Below));
        Assert.Equal(regs, p.Leader.GetRegs());
        Assert.DoesNotContain(ProcMaps.Read(w.Pid), m => m.Start == scratch);
        p.Detach();
        w.ExpectByte('p');
        w.FinishAndExpectExitZero();
    }

    [RootFact]
    public void SeveralThreadsOfOneTaskShareTheTrampoline()
    {
        using var w = new TracedWorkload(Tracer, "compel_threads", ["3"], "-pthread");
        w.ExpectByte('R');
        var p = Seizer.SeizeProcess(w.Pid);
        var vdso = ProcMaps.Read(w.Pid).Single(m => m.Kind == VmaKind.Vdso);
        byte[] vdsoBefore = ReadMem(w.Pid, vdso.Start, (int)vdso.Length);
        using (var leader = new RemoteTask(p.Leader))
        {
            foreach (var t in p.Threads.Where(t => t != p.Leader))
                using (var remote = new RemoteTask(t))
                {
                    Assert.True(remote.IsCrashSafe);
                    Assert.Equal(t.Tid, remote.Syscall(Sysno.gettid));
                }
            // The other threads are done; the leader still runs its calls on the same code.
            Assert.Equal(w.Pid, leader.Syscall(Sysno.gettid));
        }
        Assert.Equal(vdsoBefore, ReadMem(w.Pid, vdso.Start, (int)vdso.Length));
        p.Detach();
        w.Write("q");
        Assert.Equal(0, w.WaitExit().ExitCode);
    }

    private static byte[] ReadMem(int pid, ulong at, int length)
    {
        var buffer = new byte[length];
        using var mem = File.OpenHandle($"/proc/{pid}/mem", FileMode.Open, FileAccess.Read);
        Assert.Equal(length, RandomAccess.Read(mem, buffer, (long)at));
        return buffer;
    }
}
