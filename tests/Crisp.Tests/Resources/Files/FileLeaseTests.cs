using Crisp.Dump;
using Crisp.Tests.Images;
using Crisp.Tests.Integration;
using Crisp.Tests.Support;
using Xunit.Abstractions;

namespace Crisp.Tests.Resources.Files;

/// <summary>File leases (F_SETLEASE, CRIU's FL_LEASE entries in file-locks.img): a read and a write lease come back
/// after two kill + restore cycles as leases of the restored task — F_GETLEASE gives them back and a conflicting
/// open by another process waits while the task gets SIGIO to give the lease up. Without --file-locks a held
/// lease fails the dump by name and the tree runs on.</summary>
public class FileLeaseTests(ITestOutputHelper output)
{
    [RootFact]
    public void ReadAndWriteLeasesComeBackAsLeasesOfTheRestoredTask()
        => Run((dir, pid) =>
        {
            DumpOptions Options(string name) => new() { RootPid = pid, ImagesDir = Path.Combine(dir.Path, name), FileLocks = true };
            Live.Cycle(output, Options("c1"), [pid], checkImages: AssertLeases);
            var tree = Live.Cycle(output, Options("c2"), [pid], checkImages: AssertLeases);
            Live.SignalAndExpectPass(pid, dir.Path, () => Live.ExitCodeWithin(tree));
        });

    [RootFact]
    public void WithoutFileLocksALeaseFailsTheDumpByName()
        => Run((dir, pid) =>
        {
            var e = Assert.Throws<CrispException>(() => new Dumper(new DumpOptions { RootPid = pid, ImagesDir = dir.Images }, Log.Null).Run());
            Assert.Equal($"task {pid} fd 3: {dir.Path}/leased/rd holds a LEASE READ [0, EOF] lock; dump with --file-locks to keep it", e.Message);
            Assert.Equal("0", Crisp.Linux.Proc.ProcStatus.Read(pid)["TracerPid"]);
        });

    /// <summary>file-locks.img holds both leases as CRIU writes them (flag FL_LEASE 8; type F_RDLCK 0 / F_WRLCK 1).</summary>
    private static void AssertLeases(string images)
    {
        var entries = Crit.Decode(Path.Combine(images, "file-locks.img")).GetProperty("entries").EnumerateArray()
            .Select(e => (Flag: e.GetProperty("flag").GetUInt32(), Type: e.GetProperty("type").GetUInt32(), Fd: e.GetProperty("fd").GetInt32()))
            .OrderBy(e => e.Fd).ToArray();
        Assert.Equal([(8u, 0u, 3), (8u, 1u, 4)], entries);
    }

    private static void Run(Action<Live.TempDir, int> body)
    {
        string exe = Support.Workloads.Build("leases");
        using var dir = new Live.TempDir();
        string files = Directory.CreateDirectory(Path.Combine(dir.Path, "leased")).FullName;
        var w = Workload.Start(exe, ["leases", files], dir.Path);
        w.WaitReady("leases' ready line", p => p.Length >= 2);
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
