using Crisp.Linux;
using Crisp.Linux.Proc;

namespace Crisp.Tests.Linux;

public class ProcStatusStatTests
{
    private const string StatusSample =
        "Name:\tmy proc\n" +
        "Umask:\t0022\n" +
        "State:\tS (sleeping)\n" +
        "Tgid:\t4557\n" +
        "Ngid:\t0\n" +
        "Pid:\t4558\n" +
        "PPid:\t4543\n" +
        "TracerPid:\t12\n" +
        "Uid:\t1000\t1001\t1002\t1003\n" +
        "Gid:\t100\t101\t102\t103\n" +
        "FDSize:\t256\n" +
        "Groups:\t4 24 27 \n" +
        "NStgid:\t4557\t1\n" +
        "NSpid:\t4558\t2\n" +
        "Threads:\t3\n" +
        "SigQ:\t1/96364\n" +
        "SigPnd:\t0000000000000100\n" +
        "ShdPnd:\t0000000000004000\n" +
        "SigBlk:\tfffffffe7ffbfeff\n" +
        "SigIgn:\t0000000000001000\n" +
        "SigCgt:\t00000001800044ea\n" +
        "CapInh:\t0000000000000000\n" +
        "CapPrm:\t000001fffeffffff\n" +
        "CapEff:\t000001fffeffffff\n" +
        "CapBnd:\t000001ffffffffff\n" +
        "CapAmb:\t0000000000000001\n" +
        "NoNewPrivs:\t1\n" +
        "Seccomp:\t2\n" +
        "Seccomp_filters:\t3\n" +
        "Speculation_Store_Bypass:\tvulnerable\n" +
        "Cpus_allowed_list:\t0-1\n";

    [Fact]
    public void ParsesStatus()
    {
        var s = ProcStatus.Parse(StatusSample);
        Assert.Equal("my proc", s.Name);
        Assert.Equal('S', s.State);
        Assert.Equal(0x12u, s.Umask);
        Assert.Equal(4557, s.Tgid);
        Assert.Equal(4558, s.Pid);
        Assert.Equal(4543, s.PPid);
        Assert.Equal(12, s.TracerPid);
        Assert.Equal([1000u, 1001u, 1002u, 1003u], s.Uid);
        Assert.Equal([100u, 101u, 102u, 103u], s.Gid);
        Assert.Equal([4u, 24u, 27u], s.Groups);
        Assert.Equal([4558, 2], s.NSpid);
        Assert.Equal([4557, 1], s.NStgid);
        Assert.Equal(3, s.Threads);
        Assert.Equal((1UL, 96364UL), s.SigQ);
        Assert.Equal(Signals.Mask(Signals.SIGKILL), s.SigPnd);
        Assert.Equal(Signals.Mask(Signals.SIGTERM), s.ShdPnd);
        Assert.Equal(0xfffffffe7ffbfeffUL, s.SigBlk);
        Assert.Equal(Signals.Mask(Signals.SIGPIPE), s.SigIgn);
        Assert.Equal(0x00000001800044eaUL, s.SigCgt);
        Assert.Equal(0UL, s.CapInh);
        Assert.Equal(0x000001fffeffffffUL, s.CapPrm);
        Assert.Equal(0x000001fffeffffffUL, s.CapEff);
        Assert.Equal(0x000001ffffffffffUL, s.CapBnd);
        Assert.Equal(1UL, s.CapAmb);
        Assert.True(s.NoNewPrivs);
        Assert.Equal(2, s.Seccomp);
        Assert.True(s.HasSeccomp);
        Assert.False(ProcStatus.Parse("Name:\tx\nPid:\t1\n").HasSeccomp);
        Assert.Equal(3, s.SeccompFilters);
        Assert.Equal("vulnerable", s.SpeculationStoreBypass);
        Assert.Equal("0-1", s["Cpus_allowed_list"]);
        Assert.Equal("0", s["Ngid"]);
    }

    [Fact]
    public void StatusOfSelf()
    {
        var s = ProcStatus.Read(Environment.ProcessId);
        Assert.Equal(Environment.ProcessId, s.Pid);
        Assert.Equal(Environment.ProcessId, s.Tgid);
        Assert.True(s.Threads > 1);
        Assert.Equal(ProcessIds.Uid, s.Uid[0]);
        Assert.Equal(ProcessIds.Euid, s.Uid[1]);
        Assert.Equal(Environment.ProcessId, s.NSpid[0]);
        Assert.Equal(Prctl.GetNoNewPrivs(), s.NoNewPrivs);
        var caps = Capabilities.Get();
        Assert.Equal(caps.Effective, s.CapEff);
        Assert.Equal(caps.Permitted, s.CapPrm);
        Assert.Equal(caps.Inheritable, s.CapInh);
    }

    [Fact]
    public void ParsesStatWithTrickyComm()
    {
        string text = "7816 (a) b (c)) R 7772 7773 3025 34816 -1 4194304 100 1 2 3 4 5 -6 -7 20 -5 1 0 71258 3133440 380 " +
            "18446744073709551615 94851705638912 94851705658793 140720558646352 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 " +
            "94851705674800 94851705676416 94852176297984 140720558651680 140720558651700 140720558651700 140720558653419 9\n";
        var s = ProcStat.Parse(text);
        Assert.Equal(7816, s.Pid);
        Assert.Equal("a) b (c)", s.Comm);
        Assert.Equal('R', s.State);
        Assert.Equal(7772, s.PPid);
        Assert.Equal(7773, s.Pgrp);
        Assert.Equal(3025, s.Session);
        Assert.Equal(34816, s.TtyNr);
        Assert.Equal(-1, s.Tpgid);
        Assert.Equal(4194304u, s.Flags);
        Assert.Equal(100UL, s.MinFlt);
        Assert.Equal(4UL, s.UTime);
        Assert.Equal(5UL, s.STime);
        Assert.Equal(-6, s.CUTime);
        Assert.Equal(20, s.Priority);
        Assert.Equal(-5, s.Nice);
        Assert.Equal(1, s.NumThreads);
        Assert.Equal(71258UL, s.StartTime);
        Assert.Equal(3133440UL, s.VSize);
        Assert.Equal(380, s.Rss);
        Assert.Equal(ulong.MaxValue, s.RssLim);
        Assert.Equal(94851705638912UL, s.StartCode);
        Assert.Equal(94851705658793UL, s.EndCode);
        Assert.Equal(140720558646352UL, s.StartStack);
        Assert.Equal(17, s.ExitSignal);
        Assert.Equal(1, s.Processor);
        Assert.Equal(94852176297984UL, s.StartBrk);
        Assert.Equal(140720558651680UL, s.ArgStart);
        Assert.Equal(140720558651700UL, s.ArgEnd);
        Assert.Equal(140720558651700UL, s.EnvStart);
        Assert.Equal(140720558653419UL, s.EnvEnd);
        Assert.Equal(9, s.ExitCode);
        Assert.Equal(52, s.FieldCount);
    }

    [Fact]
    public void StatOfSelf()
    {
        var s = ProcStat.Read(Environment.ProcessId);
        Assert.Equal(Environment.ProcessId, s.Pid);
        Assert.Equal(ProcStatus.Read(0).Name, s.Comm);
        Assert.True(s.NumThreads > 1);
        Assert.Equal(17, s.ExitSignal);
        Assert.True(s.ArgStart < s.ArgEnd && s.EnvStart < s.EnvEnd);
        Assert.True(s.StartBrk > 0);
    }
}
