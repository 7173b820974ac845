using System.Diagnostics;
using Crisp.Compel;
using Crisp.Linux;
using Crisp.Tests.Support;
using Xunit.Abstractions;

namespace Crisp.Tests.Compel;

[Collection("compel")]
public sealed partial class RemoteSyscallTests(ITestOutputHelper output)
{
    private const int SIGUSR1 = 10;
    private static Tracer Tracer => TestTracer.Shared;
    private static readonly Seizer Seizer = new(TestTracer.Shared);

    [RootFact]
    public void RemoteGetpidReturnsTheTaskPid()
    {
        using var w = new TracedWorkload(Tracer, "compel_loop", []);
        w.ExpectByte('R');
        var p = Seizer.SeizeProcess(w.Pid);
        using (var remote = new RemoteTask(p.Leader))
        {
            Assert.Equal(w.Pid, remote.Getpid());
            Assert.Equal(w.Pid, remote.Syscall(Sysno.gettid));
        }
        p.Detach();
        w.FinishAndExpectExitZero();
    }

    [RootFact]
    public void FirstCallPatchesCodeAtRipAndPutsItBack()
    {
        using var w = new TracedWorkload(Tracer, "compel_loop", []);
        w.ExpectByte('R');
        var p = Seizer.SeizeProcess(w.Pid);
        var regs = p.Leader.GetRegs();
        ulong before = p.Leader.PeekData(regs.Rip);
        using (var remote = new RemoteTask(p.Leader, useScratchPage: false))
        {
            for (int i = 0; i < 10; i++)
                Assert.Equal(w.Pid, remote.Getpid());
        }
        Assert.Equal(before, p.Leader.PeekData(regs.Rip));
        Assert.Equal(regs, p.Leader.GetRegs());
        p.Detach();
        w.FinishAndExpectExitZero();
    }

    [RootFact]
    public void RemoteMmapShowsInMapsAndMunmapRemovesIt()
    {
        using var w = new TracedWorkload(Tracer, "compel_loop", []);
        w.ExpectByte('R');
        var p = Seizer.SeizeProcess(w.Pid);
        ulong scratch;
        using (var remote = new RemoteTask(p.Leader))
        {
            long addr = remote.Mmap(0, 3 * 4096, Mman.PROT_READ | Mman.PROT_WRITE,
                Mman.MAP_PRIVATE | Mman.MAP_ANONYMOUS);
            Assert.True(addr > 0, $"mmap returned {addr}");
            // (It may have merged with a neighbouring anonymous mapping.)
            Assert.Contains(Crisp.Linux.Proc.ProcMaps.Read(w.Pid), m => m.Start <= (ulong)addr && m.End >= (ulong)addr + 3 * 4096 && m.CanWrite);

            // Memory through /proc/PID/mem, then the task itself reads it back with a syscall.
            remote.WriteMemory((ulong)addr, "hello remote"u8);
            var back = new byte[12];
            remote.ReadMemory((ulong)addr, back);
            Assert.Equal("hello remote"u8.ToArray(), back);
            remote.PutOnScratch(new byte[8]);   // the data page is mapped on first use
            scratch = remote.ScratchData;
            Assert.NotEqual(0UL, scratch);
            // write(2) of the mapped bytes into a pipe made by the task: proves the task sees them.
            ulong fds = remote.PutOnScratch(new byte[8]);
            Assert.Equal(0, remote.Syscall(Sysno.pipe2, (long)fds, 0));
            var fdBytes = new byte[8];
            remote.ReadMemory(fds, fdBytes);
            int rfd = BitConverter.ToInt32(fdBytes, 0), wfd = BitConverter.ToInt32(fdBytes, 4);
            Assert.Equal(12, remote.Syscall(Sysno.write, wfd, addr, 12));
            Assert.Equal(12, remote.Syscall(Sysno.read, rfd, (long)scratch + 64, 12));
            remote.ReadMemory(scratch + 64, back);
            Assert.Equal("hello remote"u8.ToArray(), back);
            remote.Syscall(Sysno.close, rfd);
            remote.Syscall(Sysno.close, wfd);

            Assert.Equal(0, remote.Munmap((ulong)addr, 3 * 4096));
            Assert.DoesNotContain(Crisp.Linux.Proc.ProcMaps.Read(w.Pid), m => m.Start < (ulong)addr + 3 * 4096 && m.End > (ulong)addr);
        }
        // The scratch pages are gone after Dispose.
        Assert.DoesNotContain(Crisp.Linux.Proc.ProcMaps.Read(w.Pid), m => m.Start <= scratch && scratch < m.End);
        p.Detach();
        w.FinishAndExpectExitZero();
    }

    [RootFact]
    public void LoopWorkloadSurvivesManySeizesAndRemoteSyscalls()
    {
        using var w = new TracedWorkload(Tracer, "compel_loop", []);
        w.ExpectByte('R');
        for (int round = 0; round < 20; round++)
        {
            var p = Seizer.SeizeProcess(w.Pid);
            using (var remote = new RemoteTask(p.Leader, useScratchPage: round % 2 == 0))
            {
                for (int i = 0; i < 50; i++)
                    Assert.Equal(w.Pid, remote.Getpid());
                long addr = remote.Mmap(0, 4096, Mman.PROT_READ, Mman.MAP_PRIVATE | Mman.MAP_ANONYMOUS);
                Assert.Equal(0, remote.Munmap((ulong)addr, 4096));
            }
            p.Detach();
            Thread.Sleep(5);
        }
        w.ExpectByte('p');   // still making progress
        w.Signal(SIGUSR1);
        var status = w.WaitExit();
        Assert.True(status.Exited && status.ExitCode == 0, $"workload: {status}");
    }

    [RootFact]
    public void ReadBlockedOnPipeRestartsAfterDetach()
    {
        using var w = new TracedWorkload(Tracer, "compel_block", ["read"]);
        w.ExpectByte('R');
        Thread.Sleep(100);
        var p = Seizer.SeizeProcess(w.Pid);
        var regs = p.Leader.GetRegs();
        Assert.Equal(Sysno.read, (long)regs.OrigRax);
        Assert.True(regs.InRestartableSyscall, $"not in a restartable syscall: {regs}");
        using (var remote = new RemoteTask(p.Leader))
        {
            Assert.Equal(w.Pid, remote.Getpid());
            Assert.Equal(w.Pid, remote.Getpid());
        }
        Assert.Equal(regs, p.Leader.GetRegs());
        p.Detach();
        w.Write("hello\n");
        Assert.Equal("got:hello\n", w.ReadToEnd());
        var status = w.WaitExit();
        Assert.True(status.Exited && status.ExitCode == 0, $"workload: {status}");
    }

    [RootFact]
    public void NanosleepCompletesAfterDetachWithoutEintr()
    {
        using var w = new TracedWorkload(Tracer, "compel_block", ["sleep", "700"]);
        w.ExpectByte('R');
        Thread.Sleep(100);
        var p = Seizer.SeizeProcess(w.Pid);
        var regs = p.Leader.GetRegs();
        Assert.True(regs.InRestartableSyscall, $"not in a restartable syscall: {regs}");
        using (var remote = new RemoteTask(p.Leader))
        {
            for (int i = 0; i < 10; i++)
                Assert.Equal(w.Pid, remote.Getpid());
        }
        p.Detach();
        var status = w.WaitExit();
        Assert.True(status.Exited && status.ExitCode == 0, $"workload: {status} (3 = EINTR leaked, 4 = slept too short)");
    }

    [RootFact]
    public void SignalsSentAroundSeizeAreAllDelivered()
    {
        const int SIGRT = 40, rounds = 30;
        using var w = new TracedWorkload(Tracer, "compel_loop", []);
        w.ExpectByte('R');
        for (int i = 0; i < rounds; i++)
        {
            w.Signal(SIGRT);   // in flight while we seize: must be neither lost nor duplicated
            var p = Seizer.SeizeProcess(w.Pid);
            using (var remote = new RemoteTask(p.Leader))
            {
                Assert.Equal(w.Pid, remote.Getpid());
                w.Signal(SIGRT);   // arrives mid-injection: stays pending until detach
                Assert.Equal(w.Pid, remote.Getpid());
            }
            p.Detach();
        }
        Thread.Sleep(50);
        w.Signal(SIGUSR1);
        string tail = w.ReadToEnd();
        Assert.EndsWith($"c{2 * rounds};", tail);
        Assert.Equal(0, w.WaitExit().ExitCode);
    }

    [RootFact]
    public void TaskDyingMidCallIsReportedNotHung()
    {
        using var w = new TracedWorkload(Tracer, "compel_loop", []);
        w.ExpectByte('R');
        var p = Seizer.SeizeProcess(w.Pid);
        var remote = new RemoteTask(p.Leader);
        Assert.Equal(w.Pid, remote.Getpid());
        var gone = Assert.Throws<TaskGoneException>(() => remote.Syscall(Sysno.exit_group, 42));
        Assert.True(gone.Status.Exited && gone.Status.ExitCode == 42, gone.Status.ToString());
        w.MarkReaped(gone.Status);   // we are its parent as well as its tracer: that wait reaped it
        remote.Dispose();            // nothing left to restore; must not throw
        p.Detach();
    }

    [RootFact]
    public void GroupStoppedProcessIsReportedAndLeftStopped()
    {
        const int SIGSTOP = 19, SIGCONT = 18;
        using var w = new TracedWorkload(Tracer, "compel_loop", []);
        w.ExpectByte('R');
        w.Signal(SIGSTOP);
        SpinUntil(() => w.State == 'T');
        var p = Seizer.SeizeProcess(w.Pid);
        Assert.True(p.WasGroupStopped);
        Assert.Equal(SIGSTOP, p.Leader.GroupStopSignal);
        using (var remote = new RemoteTask(p.Leader))
            Assert.Equal(w.Pid, remote.Getpid());
        p.Detach();
        Thread.Sleep(100);
        Assert.Equal('T', w.State);
        w.Signal(SIGCONT);
        w.ExpectByte('p');
        w.FinishAndExpectExitZero();
    }

    [RootFact]
    public void MeasureRemoteSyscallLatency()
    {
        using var w = new TracedWorkload(Tracer, "compel_loop", []);
        w.ExpectByte('R');
        var p = Seizer.SeizeProcess(w.Pid);
        foreach (bool pin in new[] { false, true })
        {
            using var remote = new RemoteTask(p.Leader, pinTracer: pin);
            remote.Getpid();
            double us = Tracer.Run(() =>
            {
                var sw = Stopwatch.StartNew();
                for (int i = 0; i < 1000; i++)
                    remote.Getpid();
                return sw.Elapsed.TotalMicroseconds / 1000;
            });
            int tracerCpu = Tracer.Run(sched_getcpu);
            string line = $"remote getpid ({(remote.IsCrashSafe ? "crash-safe trampoline" : "int3 gadget")}), tracer {(pin ? "pinned" : "unpinned")}: {us:F1} µs per call " +
                $"(tracer on CPU {tracerCpu}, tracee last on CPU {Tracer.LastCpu(p.Leader.Tid)})";
            output.WriteLine(line);
            Console.WriteLine(line);
        }
        // The path before crash-safety: CONT to a `syscall; int3` gadget page (one stop per call, not two).
        using (var safe = new RemoteTask(p.Leader))
        {
            long page = safe.Mmap(0, 4096, Mman.PROT_READ | Mman.PROT_EXEC, Mman.MAP_PRIVATE | Mman.MAP_ANONYMOUS);
            safe.WriteMemory((ulong)page, [0x0f, 0x05, 0xcc]);
            using (var gadget = new RemoteTask(p.Leader, gadgetAddress: (ulong)page))
            {
                gadget.Getpid();
                double us = Tracer.Run(() =>
                {
                    var sw = Stopwatch.StartNew();
                    for (int i = 0; i < 1000; i++)
                        gadget.Getpid();
                    return sw.Elapsed.TotalMicroseconds / 1000;
                });
                string line = $"remote getpid (int3 gadget, the old path), tracer pinned: {us:F1} µs per call";
                output.WriteLine(line);
                Console.WriteLine(line);
            }
            safe.Munmap((ulong)page, 4096);
        }
        p.Detach();
        w.FinishAndExpectExitZero();
    }

    [System.Runtime.InteropServices.LibraryImport("libc")]
    private static partial int sched_getcpu();

    internal static void SpinUntil(Func<bool> condition, int timeoutMs = 5000)
    {
        var deadline = Environment.TickCount64 + timeoutMs;
        while (!condition())
        {
            if (Environment.TickCount64 > deadline)
                throw new TimeoutException("condition not reached");
            Thread.Sleep(2);
        }
    }
}
