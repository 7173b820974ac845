using System.Text.RegularExpressions;
using Crisp.Linux;
using Crisp.Tests.Integration;
using Crisp.Tests.Support;
using Xunit.Abstractions;

namespace Crisp.Tests.Migration;

/// <summary>Issue 17, frozen time: `dump -R --prev-images-dir` copies the pages written since the pre-dump while the
/// tree runs (the pre-dump's tracking reset from crisp, no stop), and stores from that copy every page not written
/// again before its stop. A dump that fails un-protects what its reset protected; one that died leaves a mark in the
/// parent, and the next dump of the chain then stores every page.</summary>
public class ChainCopyTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Slow = TimeSpan.FromMinutes(3);
    private const string Mark = "crisp-mem-track-reset";

    private CrispCli.Result Crisp(IDictionary<string, string>? env, params string[] args)
    {
        var r = CrispCli.Run(Slow, env, args);
        output.WriteLine($"crisp {string.Join(' ', args)}: exit {r.ExitCode} {r.Stderr.Trim()}");
        return r;
    }

    private void Ok(params string[] args)
    {
        var r = Crisp(null, args);
        Assert.True(r.ExitCode == 0, $"crisp {args[0]} failed: {r.Stderr}");
    }

    private static string[] Log(string images) => File.ReadAllLines(Path.Combine(images, "dump.log"));

    /// <summary>"N pages from the copy made while it ran, M read now" for <paramref name="pid"/>.</summary>
    private static (long FromCopy, long ReadNow) CopyLine(string[] log, int pid)
    {
        var m = log.Select(l => Regex.Match(l, $@"memory of {pid}: (\d+) pages from the copy made while it ran, (\d+) read now")).FirstOrDefault(x => x.Success);
        Assert.True(m is not null, "the dump logged no pages from the copy made while the tree ran");
        return (long.Parse(m.Groups[1].Value), long.Parse(m.Groups[2].Value));
    }

    [RootFact]
    public void TheDumpAfterAPreDumpCopiesWhatWasWrittenWhileTheTreeRunsAndTheRestoreHasIt()
    {
        using var w = MigDirty.Start(64, 10);
        Ok("pre-dump", "-t", w.Pid.ToString(), "-D", w.Images("pre1"));
        long written = w.Round();
        Ok("dump", "-R", "-t", w.Pid.ToString(), "-D", w.Images("final"), "--prev-images-dir", "../pre1", "-v4", "-o", "dump.log");
        var log = Log(w.Images("final"));
        Assert.Contains(log, l => l.Contains("written since the parent") && l.Contains("copied while the tree ran"));
        var (fromCopy, readNow) = CopyLine(log, w.Pid);
        // The workload sleeps after its round: all but a few pages (its stack, crisp's remote calls) come from the copy.
        Assert.True(fromCopy >= written * 9 / 10, $"{fromCopy} pages from the copy, {readNow} read now, {written} written");
        Assert.True(MigDirty.StoredPages(w.Images("final")) >= written, "every page written since the pre-dump is stored");
        Assert.Contains(log, l => l.Contains("tree released after") && !l.Contains("two stops"));
        // Asleep in sigsuspend after its round, the workload was let run once after the reset, before the stop
        // (PageTableSettle), and the plan made beside the stop's smaps read was the one used (PlanAhead).
        Assert.Contains(log, l => l.Contains("page tables of 1 task(s) settled before the stop"));
        Assert.DoesNotContain(log, l => l.Contains("plan made beside smaps is not used"));
        Assert.False(File.Exists(Path.Combine(w.Images("pre1"), Mark)), "the mark stays after a dump that is done");
        Assert.Equal(0, MigDirty.UserfaultFds(w.Pid));
        Live.AssertCritDecodesAll(w.Images("final"));

        RawSyscall.TryCall(Sysno.kill, w.Pid, Live.SIGKILL);
        Live.WaitPidsFree([w.Pid], ourChild: w.Pid);
        Ok("restore", "-d", "-D", w.Images("final"));
        w.ExpectPass();
    }

    /// <summary>A dump that fails after its reset: the pages written since the pre-dump read as written again (the
    /// retry stores them all, though the tree wrote nothing in between), the tracking stays in the task, no mark is
    /// left, and the chain restores.</summary>
    [RootFact]
    public void ADumpThatFailsAfterResettingTheTrackingUndoesItAndTheRetryStoresEveryWrittenPage()
    {
        using var w = MigDirty.Start(64, 10);
        Ok("pre-dump", "-t", w.Pid.ToString(), "-D", w.Images("pre1"));
        long written = w.Round();
        // Failing once the tree is seized again, before the memory stage (which closes the chain's tracking in the task).
        var failed = Crisp(new Dictionary<string, string> { ["CRISP_FAULT"] = "dump:seized" },
            "dump", "-R", "-t", w.Pid.ToString(), "-D", w.Images("failed"), "--prev-images-dir", "../pre1", "-v4");
        Assert.NotEqual(0, failed.ExitCode);
        Assert.Contains("copied while the tree ran", failed.Stderr);
        Assert.False(File.Exists(Path.Combine(w.Images("pre1"), Mark)), "a failed dump left its mark");
        Assert.Equal(1, MigDirty.UserfaultFds(w.Pid));   // the chain's tracking is still the task's

        Ok("dump", "-t", w.Pid.ToString(), "-D", w.Images("final"), "--prev-images-dir", "../pre1");
        long stored = MigDirty.StoredPages(w.Images("final"));
        Assert.True(stored >= written && stored <= written * 11 / 10, $"{stored} pages stored by the retry, {written} written since the pre-dump");
        Live.WaitPidsFree([w.Pid], ourChild: w.Pid);
        Ok("restore", "-d", "-D", w.Images("final"));
        w.ExpectPass();
    }

    /// <summary>The mark of a dump that died after its reset (crisp killed): the next dump trusts no tracking and
    /// stores every page, and the chain restores.</summary>
    [RootFact]
    public void AMarkLeftByADumpThatDiedMakesTheNextDumpStoreEveryPage()
    {
        using var w = MigDirty.Start(32, 10);
        Ok("pre-dump", "-t", w.Pid.ToString(), "-D", w.Images("pre1"));
        long written = w.Round();
        File.WriteAllText(Path.Combine(w.Images("pre1"), Mark), "1\n");
        Ok("dump", "-t", w.Pid.ToString(), "-D", w.Images("final"), "--prev-images-dir", "../pre1", "-v4", "-o", "dump.log");
        Assert.Contains(Log(w.Images("final")), l => l.Contains("did not finish") && l.Contains(Mark));
        long stored = MigDirty.StoredPages(w.Images("final"));
        Assert.True(stored >= 32 * 256, $"{stored} pages stored, {written} written: every page must be");
        Live.WaitPidsFree([w.Pid], ourChild: w.Pid);
        Ok("restore", "-d", "-D", w.Images("final"));
        w.ExpectPass();
    }

    /// <summary>A tree that rewrites its memory without pause (mem_wave, 48 MiB): after a pre-dump, the dump's copy
    /// races every page, so most are written again after the reset and read in the stop; the restored pages are still
    /// one sweep (mem_wave checks every page after each sweep).</summary>
    [RootFact]
    public void ACopyRacingATreeThatRewritesEveryPageStillRestoresOneMoment()
    {
        string exe = Support.Workloads.Build("mem_wave");
        string dir = $"/var/tmp/crisp-wave-{Guid.NewGuid():N}";
        Directory.CreateDirectory(dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        int pid = Spawn.Start(exe, [exe, dir, "48"], new SpawnOptions { NewSession = true, Opens = Live.DevNullStdio });
        try
        {
            Live.WaitFor(() => File.Exists(Path.Combine(dir, "ready")) || Spawn.TryReap(pid) is not null, "mem_wave to get ready", TimeSpan.FromSeconds(60));
            Ok("pre-dump", "-t", pid.ToString(), "-D", Path.Combine(dir, "pre1"));
            string images = Path.Combine(dir, "final");
            Ok("dump", "-R", "-t", pid.ToString(), "-D", images, "--prev-images-dir", "../pre1", "-v4", "-o", "dump.log");
            var log = Log(images);
            Assert.Contains(log, l => l.Contains("written since the parent") && l.Contains("copied while the tree ran"));
            CopyLine(log, pid);
            Assert.False(File.Exists(Path.Combine(dir, "verdict")), "mem_wave saw pages of two sweeps after the dump");

            RawSyscall.TryCall(Sysno.kill, pid, Live.SIGKILL);
            Live.WaitPidsFree([pid], ourChild: pid);
            Ok("restore", "-d", "-D", images);
            Dump.FreezeTimeTests.AssertWavePasses(pid, dir);
            Live.WaitPidsFree([pid], ourChild: pid);
        }
        finally
        {
            Dump.FreezeTimeTests.CleanUp([pid], pid, dir);
        }
    }
}
