using Crisp.Linux.Proc;
using Crisp.Tests.Hardened;
using Crisp.Tests.Integration;
using Crisp.Tests.Support;
using Xunit.Abstractions;

namespace Crisp.Tests.Migration;

/// <summary>Issue 17 part 4: `crisp migrate` to `crisp receive` on "another host" (<see cref="TwoHosts"/>): the
/// hardened seccomp counter (uid 1000, no capabilities, two filters) moves while it counts.</summary>
/// <remarks>Alone (ContainerEngines): `ip netns add` changes the host's mount table.</remarks>
[Collection(Runtimes.ContainerEngines.Name)]
public class MigrateTests(ITestOutputHelper output) : IDisposable
{
    private static readonly TimeSpan Slow = TimeSpan.FromMinutes(3);
    private readonly Bench _bench = new();
    private readonly TwoHosts _hosts = new();
    private TestCerts? _certs;

    /// <summary>Certificates for 127.0.0.1 and the other host's address.</summary>
    private TestCerts Certs => _certs ??= new TestCerts(_hosts.There);

    public void Dispose()
    {
        _hosts.Dispose();
        _bench.Dispose();
        _certs?.Dispose();
    }

    /// <summary>A 0700 directory for `crisp receive -D` (the images land there).</summary>
    private string ReceiveDir()
    {
        string parent = Path.Combine(_bench.Work, "target");
        Directory.CreateDirectory(parent, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        return Path.Combine(parent, "images");
    }

    private (int Pid, string Counter) StartCounter()
    {
        string counter = Path.Combine(_bench.Work, "counter.txt");
        string probe = Support.Workloads.Build("seccomp_probe");
        int pid = _bench.Start(Support.Workloads.Build("hardened", "-lseccomp"), ["hardened", "--strict", "--", probe, "--loop", counter]);
        Bench.WaitFor(() => Bench.Numbers(counter).Count >= 3 && ProcStatus.Read(pid).SeccompFilters == 2, "the probe to count");
        return (pid, counter);
    }

    private CrispCli.Result Migrate(int pid, int port, params string[] extra)
    {
        var r = CrispCli.Run(Slow, ["migrate", "-t", pid.ToString(), "--to", $"{_hosts.There}:{port}", .. extra]);
        output.WriteLine($"migrate: exit {r.ExitCode}\n{r.Stderr.Trim()}");
        return r;
    }

    /// <summary>migrate prints its progress lines first: the error is the last line, and the only one.</summary>
    private static void AssertFailedWith(string stderr, string expected)
    {
        var lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Single(lines, l => l.StartsWith("crisp: error:", StringComparison.Ordinal));
        Assert.StartsWith("crisp: error:", lines[^1]);
        Assert.Contains(expected, lines[^1]);
        Assert.All(lines[..^1], l => Assert.StartsWith("crisp migrate: ", l));
        Assert.DoesNotContain("   at ", stderr);
    }

    /// <summary>Processes (seen from here) whose command line names the counter file.</summary>
    private static List<int> Counting(string counter) =>
        Directory.EnumerateDirectories("/proc").Select(d => int.TryParse(Path.GetFileName(d), out int p) ? p : 0).Where(p => p > 0)
            .Where(p =>
            {
                try { return File.ReadAllText($"/proc/{p}/cmdline").Contains(counter) && ProcStat.Read(p).State is not 'Z'; }
                catch (IOException) { return false; }
            }).ToList();

    [RootFact]
    public void TheHardenedCounterMovesToTheOtherHostOverTlsAndCountsOnWithNoGap()
    {
        var (pid, counter) = StartCounter();
        string images = ReceiveDir();
        int port = PageServerTests.FreePort();
        var receiver = _hosts.StartReceiver(images, port, Certs.Options("server"));
        var r = Migrate(pid, port, ["--iterations", "2", .. Certs.Options("client")]);
        Assert.True(r.ExitCode == 0, $"migrate failed: {r.Stderr}; receive: {receiver.Stderr}");
        Assert.Contains("crisp migrate: pre-dump 1:", r.Stderr);
        Assert.Contains("crisp migrate: pre-dump 2:", r.Stderr);
        Assert.Contains("crisp migrate: final dump:", r.Stderr);
        Assert.True(receiver.Wait() == 0, $"receive failed: {receiver.Stderr}");
        Assert.Equal(pid.ToString(), receiver.Stdout.Trim());   // the same pid, in the target's pid namespace

        // The source tree is gone; the counter runs on the other host now, and counts on from where it was.
        Live.WaitPidsFree([pid], ourChild: pid);
        var there = Counting(counter);
        Assert.Single(there);
        Assert.Equal(receiver.NetNs, new FileInfo($"/proc/{there[0]}/ns/net").LinkTarget);
        Assert.Equal(2, ProcStatus.Read(there[0]).SeccompFilters);
        Bench.WaitCountsOn(counter, "the migrated probe to count on");
        Bench.AssertContinuous(counter);
        Assert.Equal(["final", "pre1", "pre2"], Directory.GetDirectories(images).Select(Path.GetFileName).Order());
        Live.AssertCritDecodesAll(Path.Combine(images, "final"));
    }

    [RootFact]
    public void AReceiverKilledMidwayLeavesTheSourceCountingUntouched()
    {
        var (pid, counter) = StartCounter();
        string images = ReceiveDir();
        int port = PageServerTests.FreePort();
        var receiver = _hosts.StartReceiver(images, port, []);
        var migrate = Task.Run(() => Migrate(pid, port, "--iterations", "100"));
        Live.WaitFor(() => Directory.Exists(Path.Combine(images, "pre2")) || migrate.IsCompleted, "the second iteration to arrive", TimeSpan.FromSeconds(60));
        receiver.Kill();
        var r = migrate.Result;
        Assert.Equal(1, r.ExitCode);
        AssertFailedWith(r.Stderr, $"migrate to {_hosts.There}:{port}: connection");
        Assert.Equal([pid], Counting(counter));
        Assert.Equal(0, MigDirty.UserfaultFds(pid));   // no tracking left behind in the tree
        Bench.WaitCountsOn(counter, "the source probe to count on");
        var verdict = Bench.Verdict(pid);
        Assert.True(verdict.Exited && verdict.ExitCode == 0, $"probe: {verdict}; stderr: {_bench.Stderr}");
        Bench.AssertContinuous(counter);
    }

    [RootFact]
    public void ARestoreThatFailsOnTheTargetLeavesTheSourceRunningAndNothingThere()
    {
        var (pid, counter) = StartCounter();
        string images = ReceiveDir();
        int port = PageServerTests.FreePort();
        var receiver = _hosts.StartReceiver(images, port, [], env: "CRISP_FAULT=restore:puppets");
        var r = Migrate(pid, port, "--iterations", "1");
        Assert.Equal(1, r.ExitCode);
        AssertFailedWith(r.Stderr, "the target could not restore the tree");
        Assert.Equal(1, receiver.Wait());
        output.WriteLine(receiver.Stderr);
        Assert.Empty(Directory.GetFileSystemEntries(images));
        Assert.Equal([pid], Counting(counter));
        Assert.Equal(0, MigDirty.UserfaultFds(pid));
        Bench.WaitCountsOn(counter, "the source probe to count on");
        var verdict = Bench.Verdict(pid);
        Assert.True(verdict.Exited && verdict.ExitCode == 0, $"probe: {verdict}; stderr: {_bench.Stderr}");
        Bench.AssertContinuous(counter);
    }
}
