using Crisp.Dump;
using Crisp.Linux;
using Crisp.Restore;
using Crisp.Tests.Integration;
using Crisp.Tests.Support;

namespace Crisp.Tests.Images;

/// <summary>Checkpoints written by upstream CRIU (tests/fixtures, how each was made in its README) restored by
/// crisp: the tree comes back with its pids, parents and pipe, and carries on from where CRIU stopped it; then
/// crisp dumps and restores it once more. CI has no upstream CRIU, so these images are the proof there.</summary>
public class CriuFixtureTests
{
    private const string CountFile = "/tmp/crisp-criu-fixture/count", NsCountFile = "/tmp/crisp-criu-fixture/count-ns";

    [RootFact]
    public void ABusyboxPipelineDumpedByCriu42RestoresWithCrispAndCarriesOn()
    {
        Assert.True(File.Exists("/bin/busybox"), "/bin/busybox is missing (apt package busybox-static; tests/run installs it)");
        string fixture = Path.Combine(AppContext.BaseDirectory, "fixtures", "criu-4.2", "busybox-pipeline");
        using var dir = new Live.TempDir();
        Directory.CreateDirectory(dir.Images, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        foreach (string f in Directory.EnumerateFiles(fixture))
            File.Copy(f, Path.Combine(dir.Images, Path.GetFileName(f)));
        var pids = Live.CheckpointPids(dir.Images);
        Assert.Equal([29992, 29995, 29996, 30002], pids.Order());
        // Fixed pids: wait until whatever else may hold one of them has gone.
        Live.WaitPidsFree(pids, within: TimeSpan.FromSeconds(30));
        var hashes = Live.Hashes(dir.Images);
        Directory.CreateDirectory(Path.GetDirectoryName(CountFile)!);
        File.Delete(CountFile);
        try
        {
            var tree = new Restorer(new RestoreOptions { ImagesDir = dir.Images, Detached = true, SkipImageVerify = true }, Log.Null).Run();
            Assert.Equal(29992, tree.RootPid);
            Assert.Equal("29992", Status(29995, "PPid"));
            Assert.Equal("29992", Status(29996, "PPid"));
            // The counting shell writes into the pipe the reading shell reads from.
            string pipe = ReadLink("/proc/29995/fd/1");
            Assert.StartsWith("pipe:", pipe);
            Assert.Equal(pipe, ReadLink("/proc/29996/fd/0"));
            // CRIU stopped the shell after it had counted 3: a restored one counts on from there, not from 1.
            var seen = Counts(until: 5);
            Assert.True(seen[0] == 4 && seen.SequenceEqual(Enumerable.Range(4, seen.Count)), $"counts after CRIU's images: {string.Join(' ', seen)}");
            // Nothing written into the images (a restore adds only its stats).
            var after = Live.Hashes(dir.Images);
            Assert.Equal(hashes, after.Where(kv => hashes.ContainsKey(kv.Key)).ToDictionary());

            // And once more through crisp's own images.
            string again = Path.Combine(dir.Path, "again");
            new Dumper(new DumpOptions { RootPid = 29992, ImagesDir = again }, Log.Null).Run();
            int last = int.Parse(File.ReadAllText(CountFile).Trim());
            Live.WaitPidsFree(Live.CheckpointPids(again), within: TimeSpan.FromSeconds(30));
            tree = new Restorer(new RestoreOptions { ImagesDir = again, Detached = true }, Log.Null).Run();
            Assert.Equal(29992, tree.RootPid);
            // The file still holds the last count until the restored pipeline writes the next one.
            seen = Counts(until: last + 2).SkipWhile(n => n == last).ToList();
            Assert.True(seen[0] == last + 1 && seen.SequenceEqual(Enumerable.Range(last + 1, seen.Count)),
                $"counts after crisp's images (last before: {last}): {string.Join(' ', seen)}");
        }
        finally
        {
            foreach (int p in Directory.Exists("/proc/29992") ? new[] { 29992 }.Concat(ChildrenOf(29992)).Concat(ChildrenOf(29995)) : [])
                RawSyscall.TryCall(Sysno.kill, p, 9);
            Live.KillAll(pids);
        }
    }

    [RootFact]
    public void AShellInItsOwnPidUtsAndIpcNamespacesDumpedByCriu42RestoresWithCrisp()
    {
        Assert.True(File.Exists("/bin/busybox"), "/bin/busybox is missing (apt package busybox-static; tests/run installs it)");
        string fixture = Path.Combine(AppContext.BaseDirectory, "fixtures", "criu-4.2", "busybox-pidns");
        using var dir = new Live.TempDir();
        Directory.CreateDirectory(dir.Images, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        foreach (string f in Directory.EnumerateFiles(fixture))
            File.Copy(f, Path.Combine(dir.Images, Path.GetFileName(f)));
        Directory.CreateDirectory(Path.GetDirectoryName(NsCountFile)!);
        File.Delete(NsCountFile);
        int root = 0;
        try
        {
            var tree = new Restorer(new RestoreOptions { ImagesDir = dir.Images, Detached = true, SkipImageVerify = true }, Log.Null).Run();
            root = tree.RootPid;
            // Init of a new pid namespace again (virtual pid 1, a host pid of its own), in a new UTS namespace whose
            // hostname the shell reads (through a forked hostname) into every line.
            Assert.Equal($"{root}\t1", Status(root, "NSpid"));
            Assert.NotEqual(ReadLink("/proc/self/ns/pid"), ReadLink($"/proc/{root}/ns/pid"));
            Assert.NotEqual(ReadLink("/proc/self/ns/uts"), ReadLink($"/proc/{root}/ns/uts"));
            Assert.NotEqual(ReadLink("/proc/self/ns/ipc"), ReadLink($"/proc/{root}/ns/ipc"));
            var seen = Counts(until: 5, NsCountFile, " crisp-fixture");
            Assert.True(seen[0] == 4 && seen.SequenceEqual(Enumerable.Range(4, seen.Count)), $"counts after CRIU's images: {string.Join(' ', seen)}");

            string again = Path.Combine(dir.Path, "again");
            new Dumper(new DumpOptions { RootPid = root, ImagesDir = again }, Log.Null).Run();
            int last = int.Parse(File.ReadAllText(NsCountFile).Split(' ')[0]);
            Live.WaitPidsFree([root], within: TimeSpan.FromSeconds(30));
            tree = new Restorer(new RestoreOptions { ImagesDir = again, Detached = true }, Log.Null).Run();
            root = tree.RootPid;
            seen = Counts(until: last + 2, NsCountFile, " crisp-fixture").SkipWhile(n => n == last).ToList();
            Assert.True(seen[0] == last + 1 && seen.SequenceEqual(Enumerable.Range(last + 1, seen.Count)),
                $"counts after crisp's images (last before: {last}): {string.Join(' ', seen)}");
        }
        finally
        {
            // Killing init ends its pid namespace.
            if (root > 0)
                RawSyscall.TryCall(Sysno.kill, root, 9);
        }
    }

    /// <summary>Every value the count file takes, from its next change on, until it reaches <paramref name="until"/>.</summary>
    private static List<int> Counts(int until, string file = CountFile, string suffix = "")
    {
        var seen = new List<int>();
        Live.WaitFor(() =>
        {
            string text = File.Exists(file) ? File.ReadAllText(file).Trim() : "";
            if (text.EndsWith(suffix, StringComparison.Ordinal) && int.TryParse(text[..^suffix.Length], out int n) && (seen.Count == 0 || seen[^1] != n))
                seen.Add(n);
            return seen.Count > 0 && seen[^1] >= until || seen.Count > 10;
        }, $"the pipeline to count to {until}", TimeSpan.FromSeconds(15));
        return seen;
    }

    private static string Status(int pid, string field) =>
        File.ReadAllLines($"/proc/{pid}/status").First(l => l.StartsWith(field + ":"))[(field.Length + 1)..].Trim();

    private static string ReadLink(string path) => new FileInfo(path).LinkTarget ?? "";

    private static IEnumerable<int> ChildrenOf(int pid)
    {
        try { return File.ReadAllText($"/proc/{pid}/task/{pid}/children").Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(int.Parse).ToList(); }
        catch (IOException) { return []; }
    }
}
