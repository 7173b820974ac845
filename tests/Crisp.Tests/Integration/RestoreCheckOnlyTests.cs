using System.Text.Json.Nodes;
using Crisp.Tests.Support;

namespace Crisp.Tests.Integration;

/// <summary>`crisp show DIR` says what a restore needs; `crisp restore --check-only` checks it here and creates
/// nothing: no task, no file in the images dir.</summary>
public class RestoreCheckOnlyTests
{
    [RootFact]
    public void CheckOnlyPassesThenRefusesAMissingPluginCreatingNothing()
    {
        using var dir = new Live.TempDir();
        int pid = Live.StartQuiet("/bin/sleep", ["sleep", "1000"]);
        try
        {
            Live.WaitFor(() => File.ReadAllText($"/proc/{pid}/comm").Trim() == "sleep", "sleep to exec");
            var dump = CrispCli.Run("dump", "-t", pid.ToString(), "-D", dir.Images);
            Assert.True(dump.ExitCode == 0, dump.Stderr);
            Live.WaitPidsFree([pid], pid);

            var ok = CrispCli.Run("restore", "--check-only", "-D", dir.Images);
            Assert.True(ok.ExitCode == 0, ok.Stdout + ok.Stderr);
            Assert.Contains("ok   plugins: none needed", ok.Stdout);
            Assert.Contains("ok   kernel feature clone3_set_tid", ok.Stdout);
            Assert.Contains("ok   file /usr/bin/sleep: exists", ok.Stdout);
            Assert.Contains("can be restored here", ok.Stdout);
            Assert.False(Directory.Exists($"/proc/{pid}"), "--check-only made a task");

            // The checkpoint now needs a plugin nobody has (an edit through decode/encode, manifest refreshed).
            string inventory = Path.Combine(dir.Images, "inventory.img"), json = Path.Combine(dir.Path, "inventory.json");
            Assert.Equal(0, CrispCli.Run("decode", "-i", inventory, "-o", json).ExitCode);
            var doc = JsonNode.Parse(File.ReadAllText(json))!;
            doc["entries"]![0]!["plugins_entry"] = new JsonObject { ["plugins"] = new JsonArray("no_such_plugin") };
            File.WriteAllText(json, doc.ToJsonString());
            Assert.Equal(0, CrispCli.Run("encode", "-i", json, "-o", inventory).ExitCode);
            Assert.Contains("changed: inventory.img", CrispCli.Run("manifest", dir.Images, "--update").Stdout);
            Assert.Contains("  plugins: no_such_plugin", CrispCli.Run("show", dir.Images).Stdout);

            var before = Live.Hashes(dir.Images);
            var refused = CrispCli.Run("restore", "--check-only", "-D", dir.Images);
            Assert.Equal(1, refused.ExitCode);
            FailureSafetyTests.AssertOneLine(refused.Stderr, "the checkpoint needs plugin 'no_such_plugin', which is not loaded");
            Assert.Contains("FAIL plugins no_such_plugin", refused.Stdout);
            Assert.Equal(before, Live.Hashes(dir.Images));
            Assert.False(Directory.Exists($"/proc/{pid}"), "--check-only made a task");

            // A real restore refuses the same way, before anything exists.
            var restore = CrispCli.Run("restore", "-d", "-D", dir.Images);
            Assert.Equal(1, restore.ExitCode);
            Assert.Contains("no_such_plugin", restore.Stderr);
            Assert.False(Directory.Exists($"/proc/{pid}"));
        }
        finally
        {
            Live.KillAll([pid], pid);
        }
    }

    [Fact]
    public void ShowDirListsTheNeedsOfAnEstablishedTcpConnection()
    {
        // Needs of a checkpoint come from its images alone: a files.img with an established TCP socket.
        using var tmp = new Images.TempImageDir();
        foreach (var s in Images.SampleImages.All())
            Images.SampleImages.Write(tmp.Dir, s);
        var files = Images.DecodeEncodeTests.Samples().Last(s => s.File == Crisp.Images.ImageFile.Files);
        Images.SampleImages.Write(tmp.Dir, files);
        var r = CrispCli.Run("show", "--skip-image-verify", tmp.Path);
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Contains("restore needs:", r.Stdout);
        Assert.Contains("established TCP connection 127.0.0.1:8080 -> 127.0.0.2:40000: --tcp-established", r.Stdout);
        Assert.Contains("established TCP connection [::1]:8080 -> [fe80::ff00:0:2]:40000: --tcp-established", r.Stdout);
        Assert.Contains("  namespaces: none", r.Stdout);
    }
}
