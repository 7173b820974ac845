using Crisp.Linux;
using Crisp.Tests.Integration;
using Crisp.Tests.Support;
using Xunit.Abstractions;

namespace Crisp.Tests.Dump;

/// <summary>Issue 18 (5): `dump --leave-running` lets the tree go once its state is collected and its pages are held
/// in crisp's memory, and writes the pages after. The snapshot must still be one moment: tests/workloads/mem_wave.c
/// rewrites its memory without pause and checks after every sweep that all its pages are from that sweep.</summary>
public class FreezeTimeTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Slow = TimeSpan.FromMinutes(3);

    private void Ok(params string[] args)
    {
        var r = CrispCli.Run(Slow, args);
        output.WriteLine($"crisp {string.Join(' ', args)}: exit {r.ExitCode} {r.Stderr.Trim()}");
        Assert.True(r.ExitCode == 0, $"crisp {args[0]} failed: {r.Stderr}");
    }

    /// <summary>The copy made while the tree runs, in a tree whose tasks come and go between the two stops: a shell
    /// forking a short-lived child every ~10 ms beside mem_wave (48 MiB, rewritten without pause). Children seized in
    /// the first stop are gone by the second, new ones have no copy; mem_wave's pages still come back as one sweep.</summary>
    [RootFact]
    public void ACopyMadeWhileTheTreeRunsSurvivesTasksThatComeAndGoBetweenItsStops()
    {
        string exe = Support.Workloads.Build("mem_wave");
        string dir = $"/var/tmp/crisp-wave-{Guid.NewGuid():N}";
        Directory.CreateDirectory(dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        string loop = $"{exe} {dir} 48 & while :; do /bin/true; /bin/sleep 0.01; done";
        int sh = Live.StartQuiet("/bin/sh", ["sh", "-c", loop]);
        int wave = 0;
        try
        {
            Live.WaitFor(() => File.Exists(Path.Combine(dir, "ready")), "mem_wave to get ready", TimeSpan.FromSeconds(60));
            wave = File.ReadAllText($"/proc/{sh}/task/{sh}/children").Split(' ', StringSplitOptions.RemoveEmptyEntries)
                .Select(int.Parse).First(p => File.ResolveLinkTarget($"/proc/{p}/exe", false)?.FullName == exe);
            string images = Path.Combine(dir, "images");
            Ok("dump", "-R", "-t", sh.ToString(), "-D", images, "-v4", "-o", "dump.log");
            var log = File.ReadAllLines(Path.Combine(images, "dump.log"));
            Assert.Contains(log, l => l.Contains("copy while running: first stop"));
            Assert.Contains(log, l => l.Contains($"memory of {wave}: ") && l.Contains("pages from the copy made while it ran"));
            Assert.Contains(log, l => l.Contains("tree released after") && l.Contains("(two stops:"));
            Assert.False(File.Exists(Path.Combine(dir, "verdict")), "mem_wave saw pages of two sweeps after the dump");
            AssertNoTrackingLeft(wave);

            Live.KillAll([sh, wave], sh);
            Ok("restore", "-d", "-D", images);
            AssertWavePasses(wave, dir);
        }
        finally
        {
            CleanUp([sh, wave], sh, dir);
        }
    }

    /// <summary>The problem crisp grew from, with the copy made while the tree runs: mem_wave as a hardened pod runs it
    /// (UID 1000, no capabilities, no_new_privs, the runtime-default seccomp profile, which forbids userfaultfd). The
    /// first stop's userfaultfd runs in the task with its filters suspended (PTRACE_O_SUSPEND_SECCOMP), so the task
    /// neither sees EPERM nor is killed; credentials and filters are the same after the dump and after the restore
    /// (PTRACE_SECCOMP_GET_FILTER, byte for byte), and the pages come back as one sweep.</summary>
    [RootFact]
    public void AHardenedTaskWhoseFiltersForbidUserfaultfdIsCopiedWhileItRuns()
    {
        string hardened = Support.Workloads.Build("hardened", "-lseccomp");
        string exe = Support.Workloads.Build("mem_wave");
        string dir = $"/var/tmp/crisp-wave-{Guid.NewGuid():N}";
        Directory.CreateDirectory(dir);
        File.SetUnixFileMode(dir, (UnixFileMode)0x1FF);   // 0777: mem_wave runs as UID 1000 and writes its files there
        int pid = Spawn.Start(hardened, [hardened, "--strict", "--", exe, dir, "40"], new SpawnOptions { NewSession = true, Opens = Live.DevNullStdio });
        try
        {
            Live.WaitFor(() => File.Exists(Path.Combine(dir, "ready")) || Spawn.TryReap(pid) is not null, "mem_wave to get ready", TimeSpan.FromSeconds(60));
            Assert.True(File.Exists(Path.Combine(dir, "ready")), "hardened mem_wave exited before it was ready");
            var before = Crisp.Tests.Hardened.Bench.Observe(pid);
            Assert.Equal("1000", before.Status[pid]["Uid"].Split(' ')[0]);
            Assert.Equal(2, before.Filters[pid].Count);

            string images = Path.Combine(dir, "images");
            Ok("dump", "-R", "-t", pid.ToString(), "-D", images, "-v4", "-o", "dump.log");
            var log = File.ReadAllLines(Path.Combine(images, "dump.log"));
            Assert.Contains(log, l => l.Contains($"memory of {pid}: ") && l.Contains("pages from the copy made while it ran"));
            Assert.Contains(log, l => l.Contains("tree released after") && l.Contains("(two stops:"));
            Crisp.Tests.Hardened.Bench.Observe(pid).AssertSameAs(before);
            AssertNoTrackingLeft(pid);
            Assert.False(File.Exists(Path.Combine(dir, "verdict")), "mem_wave saw pages of two sweeps after the dump");

            RawSyscall.TryCall(Sysno.kill, pid, Live.SIGKILL);
            Live.WaitPidsFree([pid], ourChild: pid);
            Ok("restore", "-d", "-D", images);
            Crisp.Tests.Hardened.Bench.Observe(pid).AssertSameAs(before);
            AssertWavePasses(pid, dir);
            Live.WaitPidsFree([pid], ourChild: pid);
        }
        finally
        {
            CleanUp([pid], pid, dir);
        }
    }

    /// <summary>SIGUSR1 to mem_wave: it finishes its sweep and writes its verdict, which must be PASS.</summary>
    internal static void AssertWavePasses(int pid, string dir)
    {
        Signals.Kill(pid, Live.SIGUSR1);
        string verdict = Path.Combine(dir, "verdict");
        Live.WaitFor(() => File.Exists(verdict) && File.ReadAllText(verdict).EndsWith('\n'), "mem_wave's verdict", TimeSpan.FromSeconds(60));
        Assert.Equal("PASS", File.ReadAllText(verdict).Trim());
    }

    internal static void CleanUp(int[] pids, int child, string dir)
    {
        var started = pids.Where(p => p != 0).ToArray();
        foreach (int p in started)
            RawSyscall.TryCall(Sysno.kill, p, Live.SIGKILL);
        Live.KillAll(started, child);
        try { Directory.Delete(dir, recursive: true); } catch (IOException) { }
    }

    /// <summary>No userfaultfd among the task's fds and no VMA registered for write-protection (smaps "uw").</summary>
    private static void AssertNoTrackingLeft(int pid)
    {
        foreach (var fd in Directory.GetFiles($"/proc/{pid}/fd"))
            Assert.NotEqual("anon_inode:[userfaultfd]", new FileInfo(fd).LinkTarget);
        var flags = File.ReadAllLines($"/proc/{pid}/smaps").Where(l => l.StartsWith("VmFlags:", StringComparison.Ordinal));
        Assert.DoesNotContain(flags, l => l.Split(' ').Contains("uw"));
    }

    [RootFact]
    public void LeaveRunningReleasesTheTreeBeforeThePagesAreWrittenAndTheirSnapshotIsOneMoment()
    {
        string exe = Support.Workloads.Build("mem_wave");
        string dir = $"/var/tmp/crisp-wave-{Guid.NewGuid():N}";
        Directory.CreateDirectory(dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        int pid = Spawn.Start(exe, [exe, dir, "64"], new SpawnOptions { NewSession = true, Opens = Live.DevNullStdio });
        try
        {
            Live.WaitFor(() => File.Exists(Path.Combine(dir, "ready")) || Spawn.TryReap(pid) is not null, "mem_wave to get ready", TimeSpan.FromSeconds(60));
            Assert.True(File.Exists(Path.Combine(dir, "ready")), "mem_wave exited before it was ready");
            string images = Path.Combine(dir, "images");
            // A dump that fails after the copy made while the tree ran: the tree runs on with no tracking left in it.
            var failed = CrispCli.Run(Slow, new Dictionary<string, string> { ["CRISP_FAULT"] = "dump:files" },
                "dump", "-R", "-t", pid.ToString(), "-D", images + "-failed", "-v4");
            Assert.NotEqual(0, failed.ExitCode);
            Assert.Contains("copy while running", failed.Stderr);
            AssertNoTrackingLeft(pid);
            Assert.False(File.Exists(Path.Combine(dir, "verdict")), "mem_wave saw pages of two sweeps after the failed dump");

            Ok("dump", "-R", "-t", pid.ToString(), "-D", images, "-v4", "-o", "dump.log");
            var log = File.ReadAllLines(Path.Combine(images, "dump.log"));
            int released = Array.FindIndex(log, l => l.Contains("tree released after"));
            int manifest = Array.FindIndex(log, l => l.Contains("dump done"));
            Assert.True(released >= 0 && released < manifest, "the tree is released before the dump is done");
            // 64 MiB: copied while the tree ran, between a first short stop and the dump's own; the pages mem_wave
            // rewrote meanwhile were read again in the second (its sweep check below fails on a page of another sweep).
            Assert.Contains(log, l => l.Contains("copy while running: first stop"));
            Assert.Contains("(two stops:", log[released]);
            var fromCopy = log.Select(l => System.Text.RegularExpressions.Regex.Match(l, @"memory of \d+: (\d+) pages from the copy made while it ran, (\d+) read now"))
                .First(m => m.Success);
            Assert.True(long.Parse(fromCopy.Groups[1].Value) > 0, fromCopy.Value);
            AssertNoTrackingLeft(pid);
            char state = File.ReadAllText($"/proc/{pid}/stat").Split(' ')[2][0];
            Assert.True(state is 'R' or 'S', $"mem_wave runs on after dump -R (state {state})");
            Assert.False(File.Exists(Path.Combine(dir, "verdict")), "mem_wave saw pages of two sweeps after the dump");
            Live.AssertCritDecodesAll(images);

            RawSyscall.TryCall(Sysno.kill, pid, Live.SIGKILL);
            Live.WaitPidsFree([pid], ourChild: pid);
            Ok("restore", "-d", "-D", images);
            AssertWavePasses(pid, dir);
            Live.WaitPidsFree([pid], ourChild: pid);
        }
        finally
        {
            CleanUp([pid], pid, dir);
        }
    }
}
