using Crisp.Security;
using Crisp.Tests.Integration;
using Crisp.Tests.Support;

namespace Crisp.Tests.Security;

/// <summary>Private by default: a dump's images, manifest, log and stats are 0600 and a directory it creates is
/// 0700 whatever the umask; a dump into an existing directory others can reach warns in one line; --images-mode
/// chooses other modes on purpose, exactly, even under a umask that would narrow them.</summary>
public class PrivateImagesTests
{
    [RootTheory]
    [InlineData("000")]
    [InlineData("022")]
    public void ImagesLogAndStatsArePrivateWhateverTheUmask(string umask)
        => Live.WithStatecheck((dir, pid, pids) =>
        {
            var r = SecurityCli.RunWithUmask(umask, "dump", "-R", "-t", pid.ToString(), "-D", dir.Images, "-o", "dump.log", "-v4");
            Assert.True(r.ExitCode == 0, $"dump: {r.Stderr}");
            Assert.Equal("0700", SecurityCli.Mode(dir.Images));
            var files = Directory.EnumerateFiles(dir.Images).ToList();
            Assert.Contains(files, f => f.EndsWith("/dump.log", StringComparison.Ordinal));
            Assert.Contains(files, f => f.EndsWith("/stats-dump", StringComparison.Ordinal));
            Assert.Contains(files, f => Path.GetFileName(f).StartsWith("pages-", StringComparison.Ordinal));
            foreach (var f in files)
                Assert.True(SecurityCli.Mode(f) == "0600", $"{f} is {SecurityCli.Mode(f)} under umask {umask}");
            Assert.DoesNotContain("open to others", File.ReadAllText(Path.Combine(dir.Images, "dump.log")));
        });

    /// <summary>The engine itself (what `crisp demo`, the RPC and tests call, without the CLI making the
    /// directory first) makes a missing images directory 0700 too, and so has nothing to warn about.</summary>
    [RootFact]
    public void TheEngineMakesAMissingImagesDirectoryPrivate()
        => Live.WithStatecheck((dir, pid, pids) =>
        {
            var log = new StringWriter();
            new Crisp.Dump.Dumper(new Crisp.Dump.DumpOptions { RootPid = pid, ImagesDir = dir.Images, LeaveRunning = true }, new Log(log, 4)).Run();
            Assert.Equal("0700", SecurityCli.Mode(dir.Images));
            Assert.DoesNotContain("open to others", log.ToString());
        });

    [RootFact]
    public void ExistingDirectoryOpenToOthersWarnsOnceAndStaleOrPlantedFilesAreReplacedNotFollowed()
        => Live.WithStatecheck((dir, pid, pids) =>
        {
            Directory.CreateDirectory(dir.Images);
            File.SetUnixFileMode(dir.Images, (UnixFileMode)0x1ED);   // 0755, as mkdir makes it under umask 022
            string stale = Path.Combine(dir.Images, $"core-{pid}.img"), victim = Path.Combine(dir.Path, "victim");
            File.WriteAllText(stale, "old");
            File.SetUnixFileMode(stale, (UnixFileMode)0x1A4);   // 0644 left by an older tool
            File.WriteAllText(victim, "keep me");
            File.CreateSymbolicLink(Path.Combine(dir.Images, $"mm-{pid}.img"), victim);

            var r = SecurityCli.RunWithUmask("022", "dump", "-R", "-t", pid.ToString(), "-D", dir.Images);
            Assert.True(r.ExitCode == 0, $"dump: {r.Stderr}");
            FailureSafetyTests.AssertOneLine(r.Stderr, $"images dir {dir.Images} is open to others (mode 0755)");
            Assert.Equal("0755", SecurityCli.Mode(dir.Images));   // the owner's directory keeps its mode
            Assert.Equal("0600", SecurityCli.Mode(stale));
            Assert.Equal("keep me", File.ReadAllText(victim));
            Assert.Null(new FileInfo(Path.Combine(dir.Images, $"mm-{pid}.img")).LinkTarget);
            Assert.Equal("0600", SecurityCli.Mode(Path.Combine(dir.Images, $"mm-{pid}.img")));

            // A log that is no regular file is written as it is, never replaced.
            r = CrispCli.Run("dump", "-R", "-t", pid.ToString(), "-D", dir.Images, "-o", "/dev/null", "-v4");
            Assert.True(r.ExitCode == 0, $"dump -o /dev/null: {r.Stderr}");
            Assert.Equal(FileStatus.S_IFCHR, FileStatus.Of("/dev/null").Mode & FileStatus.S_IFMT);
            Assert.Equal("0666", SecurityCli.Mode("/dev/null"));
        });

    [RootFact]
    public void ImagesModeChoosesOtherModesExactlyEvenUnderANarrowUmask()
        => Live.WithStatecheck((dir, pid, pids) =>
        {
            var r = SecurityCli.RunWithUmask("077", "dump", "-R", "-t", pid.ToString(), "-D", dir.Images, "--images-mode", "0640", "-o", "dump.log");
            Assert.True(r.ExitCode == 0, $"dump: {r.Stderr}");
            Assert.Equal("", r.Stderr);
            Assert.Equal("0750", SecurityCli.Mode(dir.Images));
            foreach (var f in Directory.EnumerateFiles(dir.Images))
                Assert.True(SecurityCli.Mode(f) == "0640", $"{f} is {SecurityCli.Mode(f)}");
        });

    [Theory]
    [InlineData("644x")]
    [InlineData("4600")]
    [InlineData("0400")]
    public void BadImagesModeIsOneLine(string mode)
    {
        using var dir = new Live.TempDir();
        var r = CrispCli.Run("dump", "-t", "1", "-D", dir.Images, "--images-mode", mode);
        Assert.Equal(1, r.ExitCode);
        FailureSafetyTests.AssertOneLine(r.Stderr, $"bad --images-mode '{mode}'");
        Assert.False(Directory.Exists(dir.Images));
    }
}
