using Crisp.Dump;
using Crisp.Restore;
using Crisp.Security;
using Crisp.Tests.Integration;
using Crisp.Tests.Support;
using Xunit.Abstractions;

namespace Crisp.Tests.Security;

/// <summary>Strict restore (sshd's StrictModes): images others could have written are refused in one line naming
/// the path, before anything is created — no task, no stats, the images untouched (the log the user asked for
/// records the refusal) — unless --insecure-images is given.</summary>
public class StrictRestoreTests(ITestOutputHelper output)
{
    [RootFact]
    public void ImagesOthersCouldWriteAreRefusedByNameAndTheFlagLetsThemThrough()
        => Live.WithStatecheck((dir, pid, pids) =>
        {
            new Dumper(new DumpOptions { RootPid = pid, ImagesDir = dir.Images }, Log.Null).Run();
            Live.WaitPidsFree(pids, pid);
            string core = $"core-{pid}.img", pages = Directory.EnumerateFiles(dir.Images, "pages-*.img").Select(Path.GetFileName).First()!;
            var cases = new (string Name, Action<string> Damage, Func<string, string> Named, string Expect)[]
            {
                ("world-writable dir", d => File.SetUnixFileMode(d, (UnixFileMode)0x1FF), d => d, "writable by anyone (mode 0777)"),
                ("group-writable file", d => File.SetUnixFileMode(Path.Combine(d, pages), (UnixFileMode)0x1B0), d => Path.Combine(d, pages), "writable by group 0 (mode 0660)"),
                ("file of another uid", d => SecurityCli.Chown(Path.Combine(d, core), "1000"), d => Path.Combine(d, core), "owned by uid 1000, neither the restoring user (uid 0) nor root"),
                ("dir of another uid", d => SecurityCli.Chown(d, "1000"), d => d, "owned by uid 1000"),
                ("symlinked image", d => { File.Move(Path.Combine(d, core), Path.Combine(d, "real")); File.CreateSymbolicLink(Path.Combine(d, core), "real"); },
                    d => Path.Combine(d, core), "not a regular file"),
            };
            foreach (var (name, damage, named, expect) in cases)
            {
                string copy = SecurityCli.Copy(dir.Images, Path.Combine(dir.Path, name.Replace(' ', '-')));
                damage(copy);
                var hashes = Live.Hashes(copy);
                string log = copy + ".log";
                var r = CrispCli.Run("restore", "-d", "-D", copy, "-o", log, "-v4");
                output.WriteLine($"{name}: exit {r.ExitCode}: {r.Stderr.Trim()}");
                Assert.Equal(1, r.ExitCode);
                FailureSafetyTests.AssertOneLine(r.Stderr, $"{named(copy)}: {expect}");
                Assert.Contains(StrictModes.Option, r.Stderr);
                Assert.Equal(hashes, Live.Hashes(copy));
                Assert.Contains(named(copy), File.ReadAllText(log));
                Assert.Equal("0600", SecurityCli.Mode(log));
                foreach (int p in pids)
                    Assert.False(Directory.Exists($"/proc/{p}"), $"{name}: PID {p} taken after a refused restore");
                // The engine refuses the same way for library callers.
                Assert.Throws<InsecureImagesException>(() => new Restorer(new RestoreOptions { ImagesDir = copy, Detached = true }, Log.Null).Run());
            }

            // Root's own private images restore without the flag; a world-writable directory with it.
            string open = Path.Combine(dir.Path, "world-writable-dir");
            var ok = CrispCli.Run("restore", "-d", "-S", "-D", open, StrictModes.Option);   // -S: the root is our child
            Assert.True(ok.ExitCode == 0, $"restore {StrictModes.Option}: {ok.Stderr}");
            Live.SignalAndExpectPass(pid, dir.Path, () => Live.ReapWithin(pid).ExitCode);
        });

    [RootFact]
    public void PrivateImagesOfTheRestoringUserOrRootPass()
    {
        using var dir = new Live.TempDir();
        Directory.CreateDirectory(dir.Images, (UnixFileMode)0x1ED);   // 0755: others may read, not write
        File.WriteAllText(Path.Combine(dir.Images, "inventory.img"), "");
        File.SetUnixFileMode(Path.Combine(dir.Images, "inventory.img"), (UnixFileMode)0x1A4);
        File.WriteAllText(Path.Combine(dir.Images, "notes.txt"), "");   // not a checkpoint file: not looked at
        File.SetUnixFileMode(Path.Combine(dir.Images, "notes.txt"), (UnixFileMode)0x1B6);
        StrictModes.Check(dir.Images);
        // Seen as uid 1000 restoring: root's files are fine too.
        StrictModes.Check(dir.Images, 1000);
        SecurityCli.Chown(Path.Combine(dir.Images, "inventory.img"), "1000");
        StrictModes.Check(dir.Images, 1000);
        Assert.Throws<InsecureImagesException>(() => StrictModes.Check(dir.Images, 1001));
    }
}
