using System.Formats.Tar;
using System.IO.Compression;
using Crisp.Linux.Proc;
using Crisp.Tests.Hardened;
using Crisp.Tests.Integration;
using Crisp.Tests.Support;

namespace Crisp.Tests.Runtimes;

/// <summary>Debian's Podman (4.3, `--runtime runc`) checkpoints and restores containers through crisp installed as
/// `criu`: in place, with --leave-running, and as an exported archive (the format Kubernetes' checkpoint API makes)
/// imported after the container was removed — the hardened pod (uid 1000, every capability dropped,
/// no-new-privileges, Podman's default seccomp profile) with its credentials and filters byte for byte. Podman 4.3
/// itself refuses to checkpoint a paused container; the paused case runs through runc (RuncTests).</summary>
[Collection(ContainerEngines.Name)]
public class PodmanTests
{
    [RootFact]
    public void ACheckpointIsRestoredInPlaceAndLeaveRunningKeepsItRunning()
    {
        using var c = new PodmanContainer("inplace");
        c.Run();
        c.WaitCounting(5, "the container to count");
        c.Podman("container", "checkpoint", c.Name);
        Assert.Equal("exited", c.Status);
        int stoppedAt = c.Numbers().Count;
        c.Podman("container", "restore", c.Name);
        Assert.Equal("running", c.Status);
        c.WaitCounting(stoppedAt + 5, "the restored container to count on");
        Assert.Equal(1, ProcStatus.Read(c.Pid).NSpid.Last());
        c.AssertContinuous();

        int pid = c.Pid;
        c.Podman("container", "checkpoint", "--leave-running", c.Name);
        Assert.Equal("running", c.Status);
        Assert.Equal(pid, c.Pid);
        int after = c.Numbers().Count;
        c.WaitCounting(after + 5, "the container to count on after --leave-running");
        c.AssertContinuous();
    }

    [RootFact]
    public void TheHardenedPodIsExportedAndImportedWithItsFiltersByteForByte()
    {
        using var c = new PodmanContainer("hardened");
        c.Run("--user", "1000:1000", "--cap-drop", "all", "--security-opt", "no-new-privileges");
        c.WaitCounting(5, "the hardened container to count");
        var before = ContainerInit.Of(c.Pid).AssertHardened();

        string archive = Path.Combine(c.Data, "..", "checkpoint.tar.gz");
        c.Podman("container", "checkpoint", "--export", archive, "--compress", "gzip", c.Name);   // Podman 4.3 defaults to zstd
        int stoppedAt = c.Numbers().Count;
        c.Podman("rm", "-f", c.Name);
        AssertArchiveImagesDecode(archive);
        // The process tree as checkpointctl shows it, argv asked for: the shell's own command line names usleep
        // whether or not a usleep child was alive at the checkpoint (under load the shell is often between two).
        var inspect = CrispCli.Run("inspect", "--show-secrets", archive);
        Assert.True(inspect.ExitCode == 0, inspect.Stderr);
        Assert.Contains("usleep", inspect.Stdout);

        c.Podman("container", "restore", "--import", archive);
        Assert.Equal("running", c.Status);
        c.WaitCounting(stoppedAt + 5, "the imported container to count on");
        before.AssertSameIn(c.Pid);
        c.AssertContinuous();
    }

    /// <summary>The archive holds CRIU images under checkpoint/ that Debian's crit decodes.</summary>
    private static void AssertArchiveImagesDecode(string archive)
    {
        string dir = Directory.CreateTempSubdirectory("crisp-podman-archive-").FullName;
        try
        {
            using (var gz = new GZipStream(File.OpenRead(archive), CompressionMode.Decompress))
                TarFile.ExtractToDirectory(gz, dir, overwriteFiles: false);
            string images = Path.Combine(dir, "checkpoint");
            Assert.True(File.Exists(Path.Combine(images, "inventory.img")), "the archive has no checkpoint/inventory.img");
            Live.AssertCritDecodesAll(images);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
