using Crisp.Dump;
using Crisp.Images;
using Crisp.Images.Show;
using Crisp.Linux;
using Crisp.Restore;
using Crisp.Tests.Images;
using Crisp.Tests.Support;
using Xunit.Abstractions;

namespace Crisp.Tests.Integration;

/// <summary>decode/encode and `crisp x` on real checkpoints: every image of the fd-kinds, threads, unix socket and
/// hardened workloads comes back byte for byte, the explorers print what crit x prints, and an edited file path
/// restores with the edit applied once the manifest is refreshed.</summary>
public class ImageToolsLiveTests(ITestOutputHelper output)
{
    /// <summary>Every non-raw image decodes and encodes back to the same bytes, plain and pretty.</summary>
    private static int AssertRoundTrips(string images)
    {
        int n = 0;
        foreach (string path in Directory.EnumerateFiles(images).Order(StringComparer.Ordinal))
        {
            var file = ImageKind.FromFileName(path);
            if (file is null || file.Value.Kind.IsRaw)
                continue;
            byte[] bytes = File.ReadAllBytes(path);
            foreach (bool pretty in new[] { false, true })
                Assert.True(bytes.AsSpan().SequenceEqual(ImageEncoder.Encode(ImageJson.Render(path, pretty), path)), $"{Path.GetFileName(path)} (pretty {pretty})");
            n++;
        }
        return n;
    }

    /// <summary>`crisp x` equals `crit x` for every view. crit reads ids-PID.img, which crisp keeps in core_entry.ids:
    /// a copy of the checkpoint gets them (encoded by crisp) so crit can run.</summary>
    private static void AssertExploresAsCrit(string images)
    {
        string copy = images + "-crit";
        Directory.CreateDirectory(copy);
        foreach (var f in Directory.EnumerateFiles(images))
            File.Copy(f, Path.Combine(copy, Path.GetFileName(f)));
        var dir = ImageDirectory.Open(copy);
        foreach (var t in dir.ReadAll<Crisp.Images.Proto.pstree_entry>(ImageFile.Pstree))
        {
            var core = dir.ReadAll<Crisp.Images.Proto.core_entry>(ImageFile.Core(t.Pid)).Single();
            if (core.Ids is not null && !dir.Exists(ImageFile.Ids(t.Pid)))
                dir.Write(ImageFile.Ids(t.Pid), core.Ids);
        }
        foreach (var view in CheckpointExplorer.Views)
        {
            var crit = CrispCli.RunProcess("crit", TimeSpan.FromSeconds(60), null, "x", copy, view);
            Assert.True(crit.ExitCode == 0, crit.Stderr);
            var ours = CrispCli.Run("x", images, view);
            Assert.True(ours.ExitCode == 0, ours.Stderr);
            Assert.Equal(crit.Stdout, ours.Stdout);
        }
    }

    private void Check(string images, string what)
    {
        int n = AssertRoundTrips(images);
        AssertExploresAsCrit(images);
        output.WriteLine($"{what}: {n} images round-trip, crisp x = crit x");
    }

    [RootFact]
    public void FdKindsThreadsUnixSocketsAndHardenedImagesRoundTripAndExploreAsCrit()
    {
        using var dir = new Live.TempDir();

        var fd = Workload.Start(Support.Workloads.Build("fdkinds"), ["fdkinds", dir.Path, "all"], dir.Path);
        try
        {
            fd.WaitReady("fdkinds", prefix: "ready");
            string images = Path.Combine(dir.Path, "fdkinds");
            new Dumper(new DumpOptions { RootPid = fd.Pid, ImagesDir = images, LeaveRunning = true, FileLocks = true }, Log.Null).Run();
            Assert.True(File.Exists(Path.Combine(images, "pipes-data.img")) || File.Exists(Path.Combine(images, "fifo-data.img")));
            Check(images, "fdkinds");
        }
        finally
        {
            Live.KillAll([fd.Pid], fd.Pid);
        }

        using (var thr = new ThreadsWorkload())
        {
            thr.Start(Support.Workloads.Build("thr_state", "-pthread"), ["all"], newSession: true);
            thr.WaitReady("thr_state");
            string images = thr.NewImagesDir("images");
            new Dumper(new DumpOptions { RootPid = thr.Pid, ImagesDir = images, LeaveRunning = true }, Log.Null).Run();
            Check(images, "thr_state");
        }

        string sockDir = Directory.CreateDirectory(Path.Combine(dir.Path, "socks")).FullName;
        var sk = Workload.Start(Support.Workloads.Build("sockets_unix"), ["sockets_unix", sockDir], Directory.CreateDirectory(Path.Combine(dir.Path, "sk")).FullName);
        var words = sk.WaitReady("sockets_unix", p => p.Length == 3);
        try
        {
            string images = Path.Combine(dir.Path, "unix");
            new Dumper(new DumpOptions { RootPid = sk.Pid, ImagesDir = images, LeaveRunning = true }, Log.Null).Run();
            Assert.True(File.Exists(Path.Combine(images, "sk-queues.img")));
            Check(images, "sockets_unix");
        }
        finally
        {
            Live.KillAll([sk.Pid, int.Parse(words[2])], sk.Pid);
        }

        using var bench = new Hardened.Bench();
        string counter = Path.Combine(bench.Work, "counter.txt");
        int pid = bench.Start(Support.Workloads.Build("hardened", "-lseccomp"), ["hardened", "--strict", "--", Support.Workloads.Build("seccomp_probe"), "--loop", counter]);
        Hardened.Bench.WaitFor(() => Hardened.Bench.Numbers(counter).Count >= 3, "the probe to count");
        new Dumper(new DumpOptions { RootPid = pid, ImagesDir = bench.Images, LeaveRunning = true }, Log.Null).Run();
        Assert.True(File.Exists(Path.Combine(bench.Images, "seccomp.img")));
        Check(bench.Images, "hardened");
    }

    private sealed class ThreadsWorkload() : DirWorkload("crisp-x-thr-");

    /// <summary>A counter appending to a file is dumped; the file is moved; files.img's path is edited through
    /// decode → JSON → encode; restore refuses until `crisp manifest --update`, which names files.img; then the
    /// restored counter appends to the moved file without a gap.</summary>
    [RootFact]
    public void AnEditedFilePathRestoresWithTheEditApplied()
    {
        using var dir = new Live.TempDir();
        string oldPath = Path.Combine(dir.Path, "count.log");
        string newPath = Path.Combine(Directory.CreateDirectory(Path.Combine(dir.Path, "moved")).FullName, "count.log");
        var w = Workload.Start(Support.Workloads.Build("counter"), ["counter", oldPath, "50"], dir.Path);
        List<int> pids = [w.Pid];
        try
        {
            w.WaitReady("counter", prefix: "ready");
            var dump = CrispCli.Run("dump", "-t", w.Pid.ToString(), "-D", dir.Images);
            Assert.True(dump.ExitCode == 0, dump.Stderr);
            Live.WaitPidsFree(pids, w.Pid);
            File.Move(oldPath, newPath);

            int edited = 0;
            foreach (string image in new[] { "files.img", "reg-files.img" }.Select(n => Path.Combine(dir.Images, n)).Where(File.Exists))
            {
                string json = Path.Combine(dir.Path, Path.GetFileName(image) + ".json");
                var d = CrispCli.Run("decode", "-i", image, "-o", json, "--pretty");
                Assert.True(d.ExitCode == 0, d.Stderr);
                string text = File.ReadAllText(json);
                if (!text.Contains($"\"{oldPath}\""))
                    continue;
                File.WriteAllText(json, text.Replace($"\"{oldPath}\"", $"\"{newPath}\""));
                var e = CrispCli.Run("encode", "-i", json, "-o", image);
                Assert.True(e.ExitCode == 0, e.Stderr);
                edited++;
            }
            Assert.Equal(1, edited);

            var refused = Assert.Throws<ImageVerifyException>(() => new Restorer(new RestoreOptions { ImagesDir = dir.Images, Detached = true }, Log.Null).Run());
            Assert.Contains("files.img", refused.Message);
            var m = CrispCli.Run("manifest", dir.Images, "--update");
            Assert.True(m.ExitCode == 0, m.Stderr);
            Assert.Contains("changed: files.img", m.Stdout);
            output.WriteLine(m.Stdout);

            var tree = new Restorer(new RestoreOptions { ImagesDir = dir.Images, Detached = true }, Log.Null).Run();
            Assert.Equal(w.Pid, tree.RootPid);
            Assert.Contains(Directory.GetFiles($"/proc/{w.Pid}/fd"), f => new FileInfo(f).LinkTarget == newPath);
            long size = new FileInfo(newPath).Length;
            Live.WaitFor(() => new FileInfo(newPath).Length > size + 8, "the restored counter to append to the moved file");
            // The counter checks its file by its old name on SIGUSR1: point that name at the moved file.
            File.CreateSymbolicLink(oldPath, newPath);
            Signals.Kill(w.Pid, Live.SIGUSR1);
            Assert.Equal(0, Live.ExitCodeWithin(tree));
            Assert.Contains("PASS", w.Err);
        }
        finally
        {
            Live.KillAll(pids);
        }
    }
}
