using Crisp.Tests.Resources.Memory;
using Crisp.Tests.Support;

namespace Crisp.Tests.Integration;

/// <summary>dump and restore draw a live progress line on stderr when it is a terminal (a real pty, made by
/// util-linux `script`), and nothing when stderr is a pipe.</summary>
public class ProgressLineTests
{
    private static readonly string Crisp = CrispCli.Exe;

    /// <summary>Runs crisp with stdin, stdout and stderr on a new pty; returns everything written to the pty.</summary>
    private static CrispCli.Result UnderPty(string args) =>
        CrispCli.RunProcess("script", TimeSpan.FromSeconds(120), null, "-q", "-e", "-c", $"{Crisp} {args}", "/dev/null");

    [RootFact]
    public void DumpAndRestoreShowProgressOnATerminalOnly()
    {
        using var w = MemWorkload.Start(16);
        string piped = Path.Combine(w.Dir, "piped"), images = Path.Combine(w.Dir, "pty");

        var quiet = CrispCli.Run("dump", "-R", "-t", w.Pid.ToString(), "-D", piped);
        Assert.True(quiet.ExitCode == 0, quiet.Stderr);
        Assert.DoesNotContain("crisp dump:", quiet.Stderr);
        Assert.DoesNotContain("\x1b[K", quiet.Stderr + quiet.Stdout);

        var dump = UnderPty($"dump -t {w.Pid} -D {images}");
        Assert.True(dump.ExitCode == 0, dump.Stdout);
        Assert.Contains("crisp dump: starting  0.0/0.0 MiB", dump.Stdout);
        Assert.Matches(@"crisp dump: done  (1[6-9]|[2-9]\d)\.\d/(1[6-9]|[2-9]\d)\.\d MiB  \d+\.\d MiB/s  ETA 0s", dump.Stdout);
        Assert.EndsWith("\r\x1b[K", dump.Stdout);   // erased at the end
        w.WaitGone();

        var restore = UnderPty($"restore -d -D {images}");
        Assert.True(restore.ExitCode == 0, restore.Stdout);
        Assert.Contains("crisp restore: checking images", restore.Stdout);
        Assert.Matches(@"crisp restore: done  (1[6-9]|[2-9]\d)\.\d/(1[6-9]|[2-9]\d)\.\d MiB", restore.Stdout);
        w.WaitUntil(() => w.WaitingCount >= 2, "waiting again after restore");
        w.Signal(MemWorkload.SIGUSR1);
        w.WaitUntil(() => w.Stderr.Length > 0, "the restored workload's verdict");
        Assert.Equal("PASS\n", w.Stderr);
    }
}
