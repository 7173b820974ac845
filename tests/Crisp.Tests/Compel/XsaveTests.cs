using Crisp.Compel;
using Crisp.Linux;
using Crisp.Tests.Support;

namespace Crisp.Tests.Compel;

[Collection("compel")]
public sealed class XsaveTests
{
    private const int SIGUSR1 = 10;
    private static Tracer Tracer => TestTracer.Shared;
    private static readonly Seizer Seizer = new(TestTracer.Shared);

    private static byte Pattern(int reg, int j) => (byte)(0x40 + (reg - 8) * 32 + j);

    [RootFact]
    public void XstateRoundTripKeepsAvxRegisters()
    {
        using var w = new TracedWorkload(Tracer, "compel_avx", [], "-mgeneral-regs-only");
        w.ExpectByte('R');
        var p = Seizer.SeizeProcess(w.Pid);
        var area = p.Leader.GetXstate();
        Assert.True(area.Length >= 832, $"xstate only {area.Length} bytes");
        for (int reg = 8; reg < 16; reg++)
            for (int j = 0; j < 16; j++)
            {
                Assert.Equal(Pattern(reg, j), area[Xsave.XmmOffset + reg * 16 + j]);
                Assert.Equal(Pattern(reg, 16 + j), area[Xsave.YmmHiOffset + reg * 16 + j]);
            }
        var fx = p.Leader.GetFpregs();
        Assert.Equal(512, fx.Length);
        Assert.Equal(area.AsSpan(Xsave.XmmOffset, 256).ToArray(), fx.AsSpan(Xsave.XmmOffset, 256).ToArray());

        using (var remote = new RemoteTask(p.Leader))
            remote.Getpid();
        p.Leader.SetXstate(area);
        p.Leader.SetFpregs(fx);
        // XSTATE_BV in the header may gain init-state bits; the register contents must not change.
        var again = p.Leader.GetXstate();
        Assert.Equal(area.AsSpan(Xsave.XmmOffset, 256).ToArray(), again.AsSpan(Xsave.XmmOffset, 256).ToArray());
        Assert.Equal(area.AsSpan(Xsave.YmmHiOffset, 256).ToArray(), again.AsSpan(Xsave.YmmHiOffset, 256).ToArray());
        p.Detach();
        w.Signal(SIGUSR1);
        w.Read(256);
        var status = w.WaitExit();
        Assert.True(status.Exited && status.ExitCode == 0, $"workload: {status}");
    }

    [RootFact]
    public void XstateWriteChangesYmmInTheTask()
    {
        using var w = new TracedWorkload(Tracer, "compel_avx", [], "-mgeneral-regs-only");
        w.ExpectByte('R');
        var p = Seizer.SeizeProcess(w.Pid);
        var area = p.Leader.GetXstate();
        // ymm9 := 0xA5 in all 32 bytes (low half in the legacy area, high half in YMM_Hi128).
        area.AsSpan(Xsave.XmmOffset + 9 * 16, 16).Fill(0xA5);
        area.AsSpan(Xsave.YmmHiOffset + 9 * 16, 16).Fill(0xA5);
        p.Leader.SetXstate(area);
        p.Detach();
        w.Signal(SIGUSR1);
        var regs = w.Read(256);
        Assert.Equal(256, regs.Length);
        Assert.All(regs.AsSpan(32, 32).ToArray(), b => Assert.Equal(0xA5, b));
        for (int j = 0; j < 32; j++)
            Assert.Equal(Pattern(8, j), regs[j]);
        Assert.Equal(1, w.WaitExit().ExitCode);   // the workload noticed ymm9 changed
    }
}
