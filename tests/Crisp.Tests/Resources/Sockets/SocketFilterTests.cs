using Crisp.Dump;
using Crisp.Linux.Proc;
using Crisp.Tests.Integration;
using Crisp.Tests.Support;
using Xunit.Abstractions;

namespace Crisp.Tests.Resources.Sockets;

/// <summary>Classic BPF socket filters (SO_ATTACH_FILTER, CRIU's sk_opts so_filter) on a UDP and a unix datagram
/// socket, and SO_BINDTODEVICE: after two kill + restore cycles the workload reads each filter back instruction for
/// instruction, finds its device, and sees packets sent after the restore filtered as before (truncated, or
/// dropped by length). An eBPF filter, which the kernel cannot give back, is refused by name and the tree runs on.</summary>
public class SocketFilterTests(ITestOutputHelper output)
{
    [RootFact]
    public void ClassicFiltersAndTheBoundDeviceComeBackAndStillFilter()
        => Run([], (dir, pid) =>
        {
            Live.Cycle(output, new DumpOptions { RootPid = pid, ImagesDir = Path.Combine(dir.Path, "c1") }, [pid]);
            var tree = Live.Cycle(output, new DumpOptions { RootPid = pid, ImagesDir = Path.Combine(dir.Path, "c2") }, [pid]);
            Live.SignalAndExpectPass(pid, dir.Path, () => Live.ExitCodeWithin(tree));
        });

    [RootFact]
    public void AnEbpfFilterIsRefusedByNameAndTheTreeRunsOn()
        => Run(["ebpf"], (dir, pid) =>
        {
            var e = Assert.Throws<CrispException>(() => new Dumper(new DumpOptions { RootPid = pid, ImagesDir = dir.Images }, Log.Null).Run());
            Assert.StartsWith($"task {pid} fd 3: UDP socket 127.0.0.1:", e.Message);
            Assert.EndsWith(": an eBPF socket filter (SO_ATTACH_BPF) is attached: the kernel cannot give its program back", e.Message);
            Assert.False(Directory.Exists(dir.Images) && Directory.EnumerateFileSystemEntries(dir.Images).Any(), "a refused dump leaves no images");
            Assert.Contains(ProcStat.Read(pid).State, "SR");
            Assert.Equal("0", ProcStatus.Read(pid)["TracerPid"]);
        });

    private static void Run(string[] args, Action<Live.TempDir, int> body)
    {
        string exe = Support.Workloads.Build("sockets_filter");
        using var dir = new Live.TempDir();
        var w = Workload.Start(exe, ["sockets_filter", .. args], dir.Path);
        w.WaitReady("sockets_filter's ready line", p => p.Length >= 2);
        try
        {
            body(dir, w.Pid);
        }
        finally
        {
            Live.KillAll([w.Pid], w.Pid);
        }
    }
}
