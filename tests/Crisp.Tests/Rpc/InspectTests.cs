using System.Formats.Tar;
using System.IO.Compression;
using System.Text.Json;
using Crisp.Linux;
using Crisp.Tests.Integration;
using Crisp.Tests.Support;

namespace Crisp.Tests.Rpc;

/// <summary>`crisp inspect` (issue #16 item 6, checkpointctl's view): a live process dumped with -R shows its argv and
/// environment read back from the dumped pages, its files and the dump's statistics; the same checkpoint packed as
/// Podman exports it (tar.gz with config.dump, spec.dump, stats-dump and checkpoint/) shows the container too.</summary>
public class InspectTests
{
    [RootFact]
    public void InspectShowsTheTreeWithArgvAndEnvironmentFromThePagesAndTheContainerOfAnArchive()
    {
        using var dir = new Live.TempDir();
        string images = SwrkTests.MakeDir(dir.Images);
        int pid = Spawn.Start("/bin/sleep", ["sleep", "1000"], new SpawnOptions
        {
            NewSession = true, Opens = Live.DevNullStdio, Environment = ["CRISP_INSPECT=found-in-the-pages", "PATH=/usr/bin:/bin"],
        });
        try
        {
            Live.WaitFor(() => File.ReadAllText($"/proc/{pid}/comm").Trim() == "sleep", "sleep to exec");
            var dump = CrispCli.Run("dump", "-t", pid.ToString(), "-D", images, "-R");
            Assert.True(dump.ExitCode == 0, dump.Stderr);

            // argv and environment values are secrets until asked for: counted and named only.
            var withheld = CrispCli.Run("inspect", images);
            Assert.True(withheld.ExitCode == 0, withheld.Stderr);
            Assert.Contains("cmdline: <sensitive: 2 args; --show-secrets prints them>", withheld.Stdout);
            Assert.Contains("CRISP_INSPECT=<sensitive>", withheld.Stdout);
            Assert.DoesNotContain("found-in-the-pages", withheld.Stdout);
            Assert.DoesNotContain("1000", withheld.Stdout.Split('\n').Where(l => l.Contains("cmdline")).Single());
            var withheldJson = CrispCli.Run("inspect", images, "--format", "json");
            Assert.DoesNotContain("found-in-the-pages", withheldJson.Stdout);

            var tree = CrispCli.Run("inspect", images, "--show-secrets");
            Assert.True(tree.ExitCode == 0, tree.Stderr);
            Assert.Contains($"[{pid}] sleep", tree.Stdout);
            Assert.Contains("cmdline: sleep 1000", tree.Stdout);
            Assert.Contains("CRISP_INSPECT=found-in-the-pages", tree.Stdout);
            Assert.Contains("0: /dev/null", tree.Stdout);
            Assert.Contains("pages_written:", tree.Stdout);

            var json = CrispCli.Run("inspect", images, "--format", "json", "--show-secrets");
            Assert.True(json.ExitCode == 0, json.Stderr);
            var task = JsonDocument.Parse(json.Stdout).RootElement.GetProperty("tasks")[0];
            Assert.Equal(pid, task.GetProperty("pid").GetInt32());
            Assert.Equal(["sleep", "1000"], task.GetProperty("cmdline").EnumerateArray().Select(a => a.GetString()));
            Assert.Equal(["CRISP_INSPECT=found-in-the-pages", "PATH=/usr/bin:/bin"], task.GetProperty("environment").EnumerateArray().Select(a => a.GetString()));

            string archive = Path.Combine(dir.Path, "checkpoint.tar.gz");
            PackAsPodman(images, archive);
            Assert.Contains("command: <sensitive: 2 args", CrispCli.Run("inspect", archive).Stdout);
            var packed = CrispCli.Run("inspect", archive, "--show-secrets");
            Assert.True(packed.ExitCode == 0, packed.Stderr);
            Assert.Contains("name: hardened-pod", packed.Stdout);
            Assert.Contains("image: docker.io/library/busybox:latest", packed.Stdout);
            Assert.Contains("runtime: runc", packed.Stdout);
            Assert.Contains("command: sleep 1000", packed.Stdout);
            Assert.Contains("CRISP_INSPECT=found-in-the-pages", packed.Stdout);
            Assert.Empty(Directory.EnumerateDirectories(Path.GetTempPath(), "crisp-inspect-*"));

            File.WriteAllBytes(Path.Combine(dir.Path, "z.tar.zst"), [0x28, 0xb5, 0x2f, 0xfd, 0, 0]);
            var zstd = CrispCli.Run("inspect", Path.Combine(dir.Path, "z.tar.zst"));
            Assert.Equal(1, zstd.ExitCode);
            Assert.Contains("zstd-compressed", zstd.Stderr);
        }
        finally
        {
            Live.KillAll([pid], pid);
        }
    }

    /// <summary>The layout `podman container checkpoint --export` writes (and Kubernetes' checkpoint API).</summary>
    private static void PackAsPodman(string images, string archive)
    {
        using var file = File.Create(archive);
        using var gz = new GZipStream(file, CompressionLevel.Fastest);
        using var tar = new TarWriter(gz);
        void Add(string name, byte[] data)
        {
            var entry = new PaxTarEntry(TarEntryType.RegularFile, name) { DataStream = new MemoryStream(data) };
            tar.WriteEntry(entry);
        }
        Add("config.dump", JsonSerializerBytes("""{"id":"0123abcd","name":"hardened-pod","rootfsImageName":"docker.io/library/busybox:latest","ociRuntime":"runc","createdTime":"2026-12-04T20:00:00Z"}"""));
        Add("spec.dump", JsonSerializerBytes("""{"ociVersion":"1.0.2","process":{"args":["sleep","1000"]},"hostname":"pod"}"""));
        Add("stats-dump", File.ReadAllBytes(Path.Combine(images, "stats-dump")));
        foreach (var f in Directory.EnumerateFiles(images))
            Add("checkpoint/" + Path.GetFileName(f), File.ReadAllBytes(f));
        Add("rootfs-diff.tar", new byte[1024]);
    }

    private static byte[] JsonSerializerBytes(string json) => System.Text.Encoding.UTF8.GetBytes(json);
}
