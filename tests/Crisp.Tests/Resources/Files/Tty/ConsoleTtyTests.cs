using Crisp.Dump;
using Crisp.Linux;
using Crisp.Restore;
using Crisp.Tests.Images;
using Crisp.Tests.Integration;
using Crisp.Tests.Support;
using Xunit.Abstractions;

namespace Crisp.Tests.Resources.Files.Tty;

/// <summary>The system console and a virtual terminal a workload holds (tests/workloads/tty_console.c), CRIU's
/// CONSOLE and VT kinds: dumped and restored twice, the terminals' settings put back to what they were before the
/// workload changed them between each dump and restore (so the restore must set them again), then checked by the
/// workload: device numbers, status and fd flags, termios byte for byte, window size, no controlling terminal.</summary>
public class ConsoleTtyTests(ITestOutputHelper output)
{
    private const string Console = "/dev/console", Vt = "/dev/tty1";

    /// <summary>A terminal's settings as the test found them, put back after every dump and at the end (the
    /// workload changes the machine's real console).</summary>
    private sealed class Saved : IDisposable
    {
        private readonly UnixFd _fd;
        private readonly Termios _termios;
        private readonly WinSize _winSize;

        public Saved(string path)
        {
            _fd = FileIo.Open(path, FileIo.O_RDWR | FileIo.O_NOCTTY | FileIo.O_NONBLOCK | FileIo.O_CLOEXEC);
            _termios = Terminals.GetTermios(_fd.Fd);
            _winSize = Terminals.GetWinSize(_fd.Fd);
        }

        public void PutBack()
        {
            Terminals.SetTermios(_fd.Fd, _termios);
            Terminals.SetWinSize(_fd.Fd, _winSize);
        }

        public uint Lflag => Terminals.GetTermios(_fd.Fd).Lflag;
        public uint SavedLflag => _termios.Lflag;

        public void Dispose()
        {
            try { PutBack(); } catch (SyscallException) { }
            _fd.Dispose();
        }
    }

    private static bool Opens(string path)
    {
        try { FileIo.Open(path, FileIo.O_RDONLY | FileIo.O_NOCTTY | FileIo.O_CLOEXEC).Dispose(); return true; }
        catch (SyscallException) { return false; }
    }

    [RootFact]
    public void ConsoleAndVirtualTerminalComeBackWithTheirSettings()
    {
        bool withVt = Opens(Vt);
        if (!withVt)
            output.WriteLine($"{Vt} cannot be opened here: the console alone is tested");
        using var console = new Saved(Console);
        using var vt = withVt ? new Saved(Vt) : null;
        using var w = new DirWorkload("crisp-console-");
        w.Start(Support.Workloads.Build("tty_console"), [withVt ? Vt : "-"], newSession: true);
        w.WaitReady("tty_console", f => f.Length >= 2);
        int pid = w.Pid;
        RestoredTree? tree = null;
        for (int cycle = 0; cycle < 2; cycle++)
        {
            string images = w.NewImagesDir($"images{cycle}");
            w.Dump(new DumpOptions { RootPid = pid, ImagesDir = images });
            Live.AssertCritDecodesAll(images);
            // CRIU's ids: index 1002 (console) and 1004 (every VT) shifted left once; each description names its path.
            var infos = Crit.Decode(Path.Combine(images, "tty-info.img")).GetProperty("entries").EnumerateArray().ToList();
            var types = infos.ToDictionary(i => i.GetProperty("id").GetUInt32(), i => i.GetProperty("type").GetString());
            Assert.Equal("CONSOLE", types[2004]);
            Assert.Equal(withVt ? 2 : 1, infos.Count);
            if (withVt)
                Assert.Equal("VT", types[2008]);
            Assert.All(infos, i => Assert.True(i.TryGetProperty("termios", out _), "termios kept"));
            var files = Crit.Decode(Path.Combine(images, "files.img")).GetProperty("entries").EnumerateArray().ToList();
            var regNames = files.Where(f => f.TryGetProperty("reg", out _)).ToDictionary(f => f.GetProperty("id").GetUInt32(), f => f.GetProperty("reg").GetProperty("name").GetString());
            var ttys = files.Where(f => f.TryGetProperty("tty", out _)).Select(f => f.GetProperty("tty")).ToList();
            Assert.Equal(withVt ? 3 : 2, ttys.Count);
            Assert.All(ttys, t => Assert.Contains(regNames[t.GetProperty("regf_id").GetUInt32()], new[] { Console, Vt }));

            // The restore has to set them again: the terminals are as they were before the workload ran.
            Assert.NotEqual(console.SavedLflag, console.Lflag);
            console.PutBack();
            vt?.PutBack();
            Assert.Equal(console.SavedLflag, console.Lflag);
            Live.WaitPidsFree([pid]);
            tree = w.Restore(new RestoreOptions { ImagesDir = images, Detached = true });
            Assert.NotEqual(console.SavedLflag, console.Lflag);
            if (vt is not null)
                Assert.NotEqual(vt.SavedLflag, vt.Lflag);
        }
        w.SignalAndExpectPass(tree!);
        // The workload put the settings back itself.
        Assert.Equal(console.SavedLflag, console.Lflag);
    }

    /// <summary>/dev/tty0 (the foreground VT, whichever it is) is no terminal CRIU can dump, and a second VT's settings
    /// have no place in CRIU's images (one tty_info for every VT): each refused in one line naming the fd, and the
    /// task runs on.</summary>
    [RootTheory]
    [InlineData("/dev/tty0", null, "tty (/dev/tty0) is not supported")]
    [InlineData("/dev/tty1", "/dev/tty2", "tty /dev/tty2 is a second virtual terminal (besides /dev/tty1)")]
    public void TerminalsCriuCannotCarryAreRefusedByName(string first, string? second, string expected)
    {
        if (!Opens(first) || second is not null && !Opens(second))
        {
            output.WriteLine($"{first} {second} cannot be opened here: nothing to refuse");
            return;
        }
        string dir = Directory.CreateTempSubdirectory("crisp-vt-").FullName;
        var opens = new List<(int, string, int, int)> { (5, first, FileIo.O_RDONLY | FileIo.O_NOCTTY, 0) };
        if (second is not null)
            opens.Add((6, second, FileIo.O_RDONLY | FileIo.O_NOCTTY, 0));
        int pid = Spawn.Start("/bin/sleep", ["sleep", "60"], new SpawnOptions { NewSession = true, Opens = [.. Live.DevNullStdio, .. opens] });
        try
        {
            var e = Assert.Throws<CrispException>(() =>
                new Dumper(new DumpOptions { RootPid = pid, ImagesDir = dir }, Log.Null).Run());
            Assert.Contains($"task {pid} fd {(second is null ? 5 : 6)}: {expected}", e.Message);
            Assert.DoesNotContain('\n', e.Message);
            Assert.Null(Spawn.TryReap(pid));
        }
        finally
        {
            RawSyscall.TryCall(Sysno.kill, pid, 9);
            try { Spawn.Reap(pid); } catch (SyscallException) { }
            Directory.Delete(dir, recursive: true);
        }
    }
}
