using Crisp.Dump;
using Crisp.Images;
using Crisp.Images.Proto;
using Crisp.Resources.Registers;
using Crisp.Restore;
using Crisp.Tests.Hardened;
using Crisp.Tests.Support;

namespace Crisp.Tests.Resources.Registers;

/// <summary>A thread can be dumped after the kernel set up restart_syscall() on its way out of an interrupted
/// sleep (rax = 219, rip back on the syscall instruction) but before it ran it — the v1 freezer makes this
/// happen now and then when a frozen cgroup is dumped. The restored leader is a puppet whose own restart
/// block still holds its 30 s start-up sleep: running restart_syscall there slept on for up to 30 s. The
/// images are made to hold exactly that state (from a counter dumped in nanosleep), and the restored
/// counter must tick on within its own period, not the puppet's.</summary>
public class RestartSyscallRaceTests : IDisposable
{
    private readonly Bench _bench = new();

    public void Dispose() => _bench.Dispose();

    [RootFact]
    public void AThreadAboutToRunRestartSyscallGetsEintrNotThePuppetsSleep()
    {
        string counter = Path.Combine(_bench.Work, "counter.txt");
        int pid = _bench.Start(Support.Workloads.Build("counter"), ["counter", counter, "1000"]);
        Bench.WaitFor(() => Bench.Numbers(counter).Count >= 2, "the counter to tick");
        new Dumper(new DumpOptions { RootPid = pid, ImagesDir = _bench.Images }, Log.Null).Run();
        _bench.WaitDumpedPidsFree(pid);
        long stoppedAt = Bench.Numbers(counter).Last();

        var images = ImageDirectory.Open(_bench.Images);
        var core = images.ReadOne<core_entry>(ImageFile.Core(pid));
        var regs = GpregsCodec.Decode(core.ThreadInfo.Gpregs);
        Assert.Contains(regs.OrigRax, new[] { 35UL, 230UL });   // dumped inside (clock_)nanosleep, rip just past its syscall instruction
        regs.Rax = 219;
        regs.Rip -= 2;
        regs.OrigRax = ulong.MaxValue;
        core.ThreadInfo.Gpregs = GpregsCodec.Encode(regs);
        images.Write(ImageFile.Core(pid), core);
        ImageManifest.Write(images);

        var tree = new Restorer(new RestoreOptions { ImagesDir = _bench.Images, Detached = true }, Log.Null).Run();
        Assert.Equal(pid, tree.RootPid);
        _bench.Track(pid);
        // The counter's nanosleep gets EINTR and sleeps the rest of its second in clock_nanosleep again; it
        // is never seen inside restart_syscall (219), which would be sleeping out the puppet's deadline.
        for (int i = 0; i < 10; i++)
        {
            Thread.Sleep(100);
            Assert.False(File.ReadAllText($"/proc/{pid}/syscall").StartsWith("219 ", StringComparison.Ordinal), "the restored counter sleeps in restart_syscall");
        }
        Bench.WaitFor(() => Bench.Numbers(counter).Last() >= stoppedAt + 2, "the restored counter to tick on", seconds: 10);
    }
}
