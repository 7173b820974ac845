using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;
using Crisp.Compel;
using Crisp.Compel.Puppets;
using Crisp.Dump;
using Crisp.Images;
using Crisp.Images.Proto;
using Crisp.Linux;
using Crisp.Linux.Proc;
using Crisp.Restore;
using Crisp.Tests.Compel;
using Crisp.Tests.Support;

namespace Crisp.Tests.Resources.Signals;

/// <summary>ts_state dumped with --leave-running (crit decodes it, the workload's own check still passes),
/// then its images' per-task state applied to a bare puppet by the restore stages.</summary>
public class TaskStateRoundTripTests
{
    private const int SIGHUP = 1, SIGQUIT = 3, SIGUSR1 = 10, SIGUSR2 = 12, SIGPIPE = 13, SIGTERM = 15, SIGWINCH = 28, SIGRT3 = 37;   // glibc SIGRTMIN is 34
    private static ulong Bit(int sig) => 1UL << (sig - 1);

    private sealed record Ready(ulong RobustHead, uint RobustLen, ulong AltStack, int ThreadTid, ulong ThreadAltStack);

    private static Ready ReadReady(TracedWorkload w)
    {
        var line = new StringBuilder();
        while (true)
        {
            var b = w.Read(1);
            Assert.True(b.Length == 1, $"workload ended early: '{line}'");
            if (b[0] == '\n')
                break;
            line.Append((char)b[0]);
        }
        var f = line.ToString().Split(' ');
        Assert.Equal("ready", f[0]);
        return new Ready(ulong.Parse(f[1]), uint.Parse(f[2]), ulong.Parse(f[3]), int.Parse(f[4]), ulong.Parse(f[5]));
    }

    private static JsonNode Crit(string image)
    {
        var psi = new ProcessStartInfo("crit", ["show", image]) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var p = Process.Start(psi)!;
        string output = p.StandardOutput.ReadToEnd();
        string errors = p.StandardError.ReadToEnd();
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, $"crit show {image}: {errors}");
        return JsonNode.Parse(output)!["entries"]![0]!;
    }

    private static ulong Num(JsonNode? n) => n!.GetValueKind() == System.Text.Json.JsonValueKind.String
        ? Convert.ToUInt64(n.GetValue<string>(), 16) : n.GetValue<ulong>();

    [RootFact]
    public void DumpRecordsSignalsLimitsAndTaskStateAndConsumesNothing()
    {
        using var tracer = new Tracer();
        string dir = Directory.CreateTempSubdirectory("crisp-ts-").FullName;
        try
        {
            using var w = new TracedWorkload(tracer, "ts_state", [], "-pthread");
            var ready = ReadReady(w);
            var state = TaskStateSnapshot.OfQuietTree(w.Pid);
            new Dumper(new DumpOptions { RootPid = w.Pid, ImagesDir = dir, LeaveRunning = true, ShellJob = true }, Log.Null).Run();
            StateDiff.AssertRestored(state, when: "after dump --leave-running");

            var core = Crit(Path.Combine(dir, $"core-{w.Pid}.img"));
            var tc = core["tc"]!;
            var sigactions = tc["sigactions"]!.AsArray();
            Assert.Equal(62, sigactions.Count);
            var usr2 = sigactions[SIGUSR2 - 2]!;   // SIGKILL (9) is skipped before it
            Assert.NotEqual(0UL, Num(usr2["sigaction"]));
            Assert.Equal(0x04UL | 0x10000000 | 0x08000000, Num(usr2["flags"]) & (0x04 | 0x10000000 | 0x08000000));
            Assert.Equal(Bit(2), Num(usr2["mask"]));
            Assert.Equal(1UL, Num(sigactions[SIGPIPE - 2]!["sigaction"]));   // SIG_IGN
            ulong mask = Bit(SIGTERM) | Bit(SIGHUP) | Bit(SIGRT3) | Bit(SIGUSR1);
            Assert.Equal(mask, Num(tc["blk_sigset"]));
            Assert.True(tc["child_subreaper"]!.GetValue<bool>());
            var shared = tc["signals_s"]!["signals"]!.AsArray();
            Assert.Equal(2, shared.Count);
            var rl = tc["rlimits"]!["rlimits"]!.AsArray();
            Assert.Equal(16, rl.Count);
            Assert.Equal(123UL, Num(rl[Rlimits.RLIMIT_NOFILE]!["cur"]));
            Assert.Equal(456UL, Num(rl[Rlimits.RLIMIT_NOFILE]!["max"]));
            Assert.Equal(789UL, Num(rl[Rlimits.RLIMIT_CORE]!["max"]));

            var th = core["thread_core"]!;
            Assert.Equal(mask, Num(th["blk_sigset"]));
            Assert.Equal(ready.RobustHead, Num(th["futex_rla"]));
            Assert.Equal(ready.RobustLen, (uint)Num(th["futex_rla_len"]));
            Assert.Equal((ulong)SIGWINCH, Num(th["pdeath_sig"]));
            Assert.Equal(ready.AltStack, Num(th["sas"]!["ss_sp"]));
            Assert.Equal(65536UL, Num(th["sas"]!["ss_size"]));
            Assert.Single(th["signals_p"]!["signals"]!.AsArray());
            Assert.NotEqual(0UL, Num(th["rseq_entry"]!["rseq_abi_pointer"]));
            Assert.Equal(0UL, Num(th["creds"]!["uid"]));

            var other = Crit(Path.Combine(dir, $"core-{ready.ThreadTid}.img"))["thread_core"]!;
            Assert.Equal(mask | Bit(SIGQUIT), Num(other["blk_sigset"]));
            Assert.Equal(ready.ThreadAltStack, Num(other["sas"]!["ss_sp"]));
            Assert.Single(other["signals_p"]!["signals"]!.AsArray());

            // Still pending in the live task, and its own check passes.
            var status = ProcStatus.Read(w.Pid);
            Assert.Equal(Bit(SIGHUP) | Bit(SIGRT3), status.ShdPnd);
            Assert.Equal(Bit(SIGTERM), status.SigPnd);
            w.Signal(SIGUSR1);
            string rest = w.ReadToEnd();
            var exit = w.WaitExit();
            Assert.True(exit.Exited && exit.ExitCode == 0, $"ts_state after dump: {exit}, '{rest}'");
            Assert.Contains("PASS", rest);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static RestoreContext NewContext(Tracer tracer, string dir) => new(
        new RestoreOptions { ImagesDir = dir }, Log.Null, ImageDirectory.Open(dir), tracer, new Seizer(tracer),
        FaultInjection.None, new inventory_entry());

    private static RestoreTask TaskFor(Puppet puppet, core_entry core)
        => new(new pstree_entry { Pid = (uint)puppet.Pid }, [new RestoreThread(puppet.Pid, core)], null) { Puppet = puppet };

    [RootFact]
    public void RestoreStagesShapeAPuppetFromTheImages()
    {
        using var tracer = new Tracer();
        string dir = Directory.CreateTempSubdirectory("crisp-ts-").FullName;
        Puppet? puppet = null;
        try
        {
            int pid;
            using (var w = new TracedWorkload(tracer, "ts_state", [], "-pthread"))
            {
                ReadReady(w);
                new Dumper(new DumpOptions { RootPid = w.Pid, ImagesDir = dir, LeaveRunning = true, ShellJob = true }, Log.Null).Run();
                pid = w.Pid;
            }
            var core = ImageDirectory.Open(dir).ReadAll<core_entry>(ImageFile.Core(pid))[0];
            var ctx = NewContext(tracer, dir);
            puppet = Puppet.Spawn(ctx.Seizer);
            var task = TaskFor(puppet, core);

            // No Memory stage here: give the rseq area a page of its own at the saved address.
            ulong rseqPage = core.ThreadCore.RseqEntry.RseqAbiPointer & ~0xfffUL;
            puppet.Call("mmap", Sysno.mmap, (long)rseqPage, 0x2000, 3, 0x22 | 0x10, -1, 0);

            foreach (var stage in Restorer.Stages.Where(s => s.Name is "rlimits" or "signals" or "taskstate" or "rseq" or "creds"))
                stage.Restore(ctx, task);

            var limits = ProcLimits.ToRlimits(ProcLimits.Read(puppet.Pid));
            Assert.Equal(new Rlimit(123, 456), limits[Rlimits.RLIMIT_NOFILE]);
            Assert.Equal(new Rlimit(0, 789), limits[Rlimits.RLIMIT_CORE]);

            var s = ProcStatus.Read(puppet.Pid);
            Assert.Equal(Bit(SIGTERM), s.SigPnd);
            Assert.Equal(Bit(SIGHUP) | Bit(SIGRT3), s.ShdPnd);
            // The workload's handlers: SIGUSR2 and glibc's own (33, SIGSETXID).
            var caught = Enumerable.Range(1, 64).Where(sig => sig is not (9 or 19))
                .Zip(core.Tc.Sigactions).Where(p => p.Second.Sigaction > 1).Aggregate(0UL, (m, p) => m | Bit(p.First));
            Assert.NotEqual(0UL, caught & Bit(SIGUSR2));
            Assert.Equal(caught, s.SigCgt);
            Assert.Equal(Bit(SIGPIPE), s.SigIgn & Bit(SIGPIPE));

            // rt_sigaction read back equals the image, restorer included.
            ulong at = puppet.Remote.PutOnScratch(new byte[32]);
            puppet.Call("rt_sigaction", Sysno.rt_sigaction, SIGUSR2, 0, (long)at, 8);
            var back = new byte[32];
            puppet.Remote.ReadMemory(at, back);
            var saved = core.Tc.Sigactions[SIGUSR2 - 2];
            Assert.Equal([saved.Sigaction, saved.Flags, saved.Restorer, saved.Mask],
                new[] { 0, 8, 16, 24 }.Select(o => BitConverter.ToUInt64(back, o)).ToArray());

            at = puppet.Remote.PutOnScratch(new byte[24]);
            puppet.Call("sigaltstack", Sysno.sigaltstack, 0, (long)at);
            var ss = new byte[24];
            puppet.Remote.ReadMemory(at, ss);
            Assert.Equal(core.ThreadCore.Sas.SsSp, BitConverter.ToUInt64(ss, 0));
            Assert.Equal(core.ThreadCore.Sas.SsSize, BitConverter.ToUInt64(ss, 16));

            at = puppet.Remote.PutOnScratch(new byte[8]);
            puppet.Call("prctl", Sysno.prctl, Prctl.PR_GET_PDEATHSIG, (long)at);
            Assert.Equal(SIGWINCH, Read32(puppet, at));
            puppet.Call("prctl", Sysno.prctl, Prctl.PR_GET_CHILD_SUBREAPER, (long)at);
            Assert.Equal(1, Read32(puppet, at));

            nint robust = System.Runtime.InteropServices.Marshal.AllocHGlobal(16);
            try
            {
                RawSyscall.Call("get_robust_list", Sysno.get_robust_list, puppet.Pid, robust, robust + 8);
                Assert.Equal(core.ThreadCore.FutexRla, (ulong)System.Runtime.InteropServices.Marshal.ReadInt64(robust));
                Assert.Equal(core.ThreadCore.FutexRlaLen, (uint)System.Runtime.InteropServices.Marshal.ReadInt64(robust, 8));
            }
            finally
            {
                System.Runtime.InteropServices.Marshal.FreeHGlobal(robust);
            }
            var conf = puppet.Thread.RseqConfiguration();
            Assert.Equal(core.ThreadCore.RseqEntry.RseqAbiPointer, conf.RseqAbiPointer);
            Assert.Equal(core.ThreadCore.RseqEntry.Signature, conf.Signature);
        }
        finally
        {
            puppet?.Kill();
            Directory.Delete(dir, recursive: true);
        }
    }

    private static int Read32(Puppet p, ulong at)
    {
        var b = new byte[4];
        p.Remote.ReadMemory(at, b);
        return BitConverter.ToInt32(b);
    }

    [RootFact]
    public void CredsRestoreDropsAPuppetToAPlainUser()
        => WithBarePuppet((ctx, puppet) =>
        {
            ulong bnd = ProcStatus.Read(Environment.ProcessId).CapBnd & ~(1UL << Capabilities.CAP_SYS_ADMIN);
            var creds = new creds_entry
            {
                Uid = 1000, Euid = 1000, Suid = 1000, Fsuid = 1000,
                Gid = 1000, Egid = 1000, Sgid = 1000, Fsgid = 1000,
                Secbits = 0, NoNewPrivs = 1,
            };
            creds.Groups.Add(1000);
            creds.Groups.Add(27);
            foreach (var f in new[] { creds.CapInh, creds.CapPrm, creds.CapEff })
                Crisp.Resources.Creds.CapWords.Put(f, 0);
            Crisp.Resources.Creds.CapWords.Put(creds.CapBnd, bnd);
            var core = new core_entry { Mtype = core_entry.Types.march.X8664, Tc = new task_core_entry(),
                ThreadCore = new thread_core_entry { Creds = creds } };
            puppet.Call("prctl", Sysno.prctl, Prctl.PR_SET_PDEATHSIG, SIGWINCH);
            new Crisp.Resources.Creds.CredsRestore().Restore(ctx, TaskFor(puppet, core));

            var s = ProcStatus.Read(puppet.Pid);
            Assert.Equal([1000u, 1000, 1000, 1000], s.Uid);
            Assert.Equal([1000u, 1000, 1000, 1000], s.Gid);
            Assert.Equal([27u, 1000], s.Groups.Order().ToArray());
            Assert.Equal(0UL, s.CapEff);
            Assert.Equal(0UL, s.CapPrm);
            Assert.Equal(bnd, s.CapBnd);
            Assert.True(s.NoNewPrivs);
            // commit_creds cleared them; the stage put them back.
            Assert.Equal(1, puppet.Call("prctl", Sysno.prctl, Prctl.PR_GET_DUMPABLE));
            ulong at = puppet.Remote.PutOnScratch(new byte[4]);
            puppet.Call("prctl", Sysno.prctl, Prctl.PR_GET_PDEATHSIG, (long)at);
            Assert.Equal(SIGWINCH, Read32(puppet, at));
        });

    /// <summary>A bare puppet and a restore context on an empty image directory, for <paramref name="body"/> to apply
    /// restore stages by hand; the puppet is killed and the directory removed afterwards.</summary>
    private static void WithBarePuppet(Action<RestoreContext, Puppet> body)
    {
        using var tracer = new Tracer();
        string dir = Directory.CreateTempSubdirectory("crisp-ts-").FullName;
        Puppet? puppet = null;
        try
        {
            ImageDirectory.Create(dir);
            var ctx = NewContext(tracer, dir);
            puppet = Puppet.Spawn(ctx.Seizer);
            body(ctx, puppet);
        }
        finally
        {
            puppet?.Kill();
            Directory.Delete(dir, recursive: true);
        }
    }

    [RootFact]
    public void HardLimitAboveCrispsIsAClearError()
        => WithBarePuppet((ctx, puppet) =>
        {
            var mine = ProcLimits.ToRlimits(ProcLimits.Read(Environment.ProcessId));
            // Lower the puppet's hard RLIMIT_NOFILE first, then ask for more than that: only CAP_SYS_RESOURCE could.
            var tc = new task_core_entry { Rlimits = new task_rlimits_entry() };
            for (int r = 0; r < Rlimits.RLIM_NLIMITS; r++)
                tc.Rlimits.Rlimits.Add(new rlimit_entry { Cur = mine[r].Cur, Max = mine[r].Max });
            var lowered = new byte[16];
            BitConverter.TryWriteBytes(lowered.AsSpan(0), 64UL);
            BitConverter.TryWriteBytes(lowered.AsSpan(8), 64UL);
            ulong at = puppet.Remote.PutOnScratch(lowered);
            puppet.Call("prlimit64", Sysno.prlimit64, 0, Rlimits.RLIMIT_NOFILE, (long)at, 0);
            tc.Rlimits.Rlimits[Rlimits.RLIMIT_NOFILE] = new rlimit_entry { Cur = 64, Max = 128 };
            var core = new core_entry { Mtype = core_entry.Types.march.X8664, Tc = tc, ThreadCore = new thread_core_entry() };
            bool canRaise = (ProcStatus.Read(Environment.ProcessId).CapEff & (1UL << Capabilities.CAP_SYS_RESOURCE)) != 0;
            if (canRaise)
                return;   // this host's root may raise hard limits: nothing to refuse
            var e = Assert.Throws<CrispException>(() => new Crisp.Resources.Rlimits.RlimitsRestore().Restore(ctx, TaskFor(puppet, core)));
            Assert.Contains("RLIMIT_NOFILE", e.Message);
            Assert.Contains("CAP_SYS_RESOURCE", e.Message);
        });
}
