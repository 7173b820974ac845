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

    /// <summary>Processes (seen from here) whose command line is all of <paramref name="args"/>, NUL-separated.</summary>
    private static List<int> Running(params string[] args)
    {
        string cmdline = string.Join('\0', args) + "\0";
        return Counting(args[^1]).Where(p => File.ReadAllText($"/proc/{p}/cmdline").EndsWith(cmdline, StringComparison.Ordinal)).ToList();
    }

    private static long Progress(string file) =>
        File.Exists(file) && long.TryParse(File.ReadAllText(file).Trim(), out long n) ? n : 0;

    /// <summary>The issue's TCP case: tests/workloads/tcp_seq.c's server, on the service address, with a client on
    /// this host that is not migrated and sends a request every 10 ms whatever happens, each answer numbered by the
    /// server. The server moves with --tcp-established; the source's network lock drops the client's segments on a
    /// host without the socket until the address is routed to the other host, where the restored socket (bound to
    /// the same address) takes the retransmissions: the client sees no reset and no request lost or answered twice,
    /// and the server's count goes on. With --network-lock skip the same move resets the client's connection (the
    /// premise of the lock).</summary>
    [RootTheory]
    [InlineData("nftables")]
    [InlineData("skip")]
    public void AServerWithAConnectedClientMovesWithTcpEstablishedAndTheConnectionCarriesOnOnlyWithTheLock(string method)
    {
        _hosts.AddService();
        string exe = Support.Workloads.Build("tcp_seq");
        string work = _bench.Work;
        int servicePort = PageServerTests.FreePort();
        string[] serverArgs = ["server", work, servicePort.ToString()];
        int server = _bench.Start(exe, ["tcp_seq", .. serverArgs]);
        Bench.WaitFor(() => File.Exists(Path.Combine(work, "server-ready")), "the server to listen");
        int client = _bench.Start(exe, ["tcp_seq", "client", work, _hosts.Service, servicePort.ToString(), _hosts.Here]);
        string progress = Path.Combine(work, "progress"), verdict = Path.Combine(work, "client-verdict");
        Bench.WaitFor(() => Progress(progress) >= 20 || File.Exists(verdict), "the client to talk");
        string table = $"crisp-{server}";
        try
        {
            string images = ReceiveDir();
            int port = PageServerTests.FreePort();
            var receiver = _hosts.StartReceiver(images, port, []);
            var r = Migrate(server, port, "--tcp-established", "--network-lock", method, "--iterations", "1");
            Assert.True(r.ExitCode == 0, $"migrate failed: {r.Stderr}; receive: {receiver.Stderr}");
            Assert.True(receiver.Wait() == 0, $"receive failed: {receiver.Stderr}");
            Live.WaitPidsFree([server], ourChild: server);
            var there = Running(serverArgs);
            Assert.Single(there);
            Assert.Equal(receiver.NetNs, new FileInfo($"/proc/{there[0]}/ns/net").LinkTarget);
            if (method == "skip")
            {
                // Nothing kept the client's requests from this host while no socket owned the connection here.
                Bench.WaitFor(() => File.Exists(verdict) && File.ReadAllText(verdict).EndsWith('\n'), "the client to fail");
                output.WriteLine($"client: {File.ReadAllText(verdict).Trim()}");
                Assert.Contains("Connection reset by peer", File.ReadAllText(verdict));
                Assert.DoesNotContain("nft delete table", r.Stderr);
                return;
            }
            Assert.False(File.Exists(verdict), $"the client gave up during the move: {(File.Exists(verdict) ? File.ReadAllText(verdict) : "")}");
            // The source's lock is still on: the client's requests meanwhile were dropped here, not answered with a reset.
            Assert.Contains($"nft delete table inet {table}", r.Stderr);
            _hosts.MoveServiceThere();

            long moved = Progress(progress);
            Bench.WaitFor(() => Progress(progress) >= moved + 50 || File.Exists(verdict), "the client to talk on with the moved server", 60);
            Assert.False(File.Exists(verdict), $"client: {(File.Exists(verdict) ? File.ReadAllText(verdict) : "")}");

            Crisp.Linux.Signals.Kill(client, Live.SIGUSR1);
            Bench.WaitFor(() => File.Exists(verdict) && File.ReadAllText(verdict).EndsWith('\n'), "the client's verdict");
            output.WriteLine($"client: {File.ReadAllText(verdict).Trim()} ({moved} answered when the migration was over)");
            Assert.StartsWith("PASS", File.ReadAllText(verdict));
            // The client shut its side down: the restored server reads the end and exits.
            Bench.WaitFor(() => Running(serverArgs).Count == 0, "the moved server to end");
        }
        finally
        {
            Live.RunProcess("/usr/sbin/nft", TimeSpan.FromSeconds(10), null, "delete", "table", "inet", table);
        }
    }

    /// <summary>lazy_mem's ticks: (tick, resident pages, buffer pages) per line.</summary>
    private static List<(long Tick, long Resident, long Total)> Ticks(string dir) =>
        [.. File.ReadAllLines(Path.Combine(dir, "ticks")).Select(l => l.Split(' ')).Where(f => f.Length == 3)
            .Select(f => (long.Parse(f[0]), long.Parse(f[1]), long.Parse(f[2])))];

    /// <summary>--lazy (post-copy), over TLS (both connections): tests/workloads/lazy_mem.c, 128 MiB of pages filled from their index, writing 4 MiB of
    /// them again every 10 ms (so the pre-dump's copy is mostly stale by the final dump) and logging each 10 ms tick
    /// with how many of its pages are resident. The final dump leaves the pages written since the pre-dump in the
    /// stopped tree; the target runs the tree while its lazy-pages daemon fetches them: a tick there sees pages
    /// missing, and the source served pages after the target said the tree runs. The source tree is killed once the
    /// last page is there, and every page checks out.</summary>
    [RootFact]
    public void ALazyMigrationRunsOnTheTargetBeforeItsLastPageAndEndsWithEveryPageRight()
    {
        const int mib = 128, pages = mib * 256;
        string dir = _bench.Work;
        int pid = _bench.Start(Support.Workloads.Build("lazy_mem"), ["lazy_mem", dir, mib.ToString(), "rewrite"]);
        Bench.WaitFor(() => File.Exists(Path.Combine(dir, "ready")), "lazy_mem to fill its memory", 60);
        string images = ReceiveDir();
        int port = PageServerTests.FreePort();
        var receiver = _hosts.StartReceiver(images, port, Certs.Options("server"));
        var r = Migrate(pid, port, ["--lazy", "--iterations", "1", .. Certs.Options("client")]);
        Assert.True(r.ExitCode == 0, $"migrate failed: {r.Stderr}; receive: {receiver.Stderr}");
        Assert.True(receiver.Wait() == 0, $"receive failed: {receiver.Stderr}");
        Assert.Equal(pid.ToString(), receiver.Stdout.Trim());
        Live.WaitPidsFree([pid], ourChild: pid);

        var served = System.Text.RegularExpressions.Regex.Match(r.Stderr, @"lazy pages: (\d+) served from the stopped tree, (\d+) of them once it ran on the target");
        Assert.True(served.Success, r.Stderr);
        long total = long.Parse(served.Groups[1].Value), afterRunning = long.Parse(served.Groups[2].Value);
        Assert.True(total > pages / 8, $"only {total} of {pages} pages were left lazy by the final dump");
        Assert.True(afterRunning > 0, "every lazy page was sent before the target said the tree runs");
        // The restored tree ticks on from the dumped count; some of its ticks saw pages not there yet.
        int seen = Ticks(dir).Count;
        Bench.WaitFor(() => Ticks(dir).Count > seen + 5, "the restored tree to tick on", 60);
        var ticks = Ticks(dir);
        Assert.Equal(pages, ticks[^1].Resident);
        Assert.All(ticks.Zip(ticks.Skip(1)), p => Assert.Equal(p.First.Tick + 1, p.Second.Tick));
        var partial = ticks.Where(t => t.Resident < t.Total).ToList();
        output.WriteLine($"{total} lazy pages, {afterRunning} sent once the tree ran; {partial.Count} ticks saw pages missing, the first {(partial.Count > 0 ? $"{partial[0].Resident}/{partial[0].Total}" : "-")}");
        Assert.NotEmpty(partial);

        var there = Running("lazy_mem", dir, mib.ToString(), "rewrite");
        Assert.Single(there);
        Assert.Equal(receiver.NetNs, new FileInfo($"/proc/{there[0]}/ns/net").LinkTarget);
        Crisp.Linux.Signals.Kill(there[0], Live.SIGUSR1);
        string verdict = Path.Combine(dir, "verdict");
        Bench.WaitFor(() => File.Exists(verdict) && File.ReadAllText(verdict).EndsWith('\n'), "lazy_mem's verdict", 60);
        Assert.Equal("PASS", File.ReadAllText(verdict).Trim());
    }

    /// <summary>--lazy, the source failing half-way through the pages (CRISP_FAULT=migrate:lazy-pages; the tree runs on
    /// the target by then): the target's daemon kills the restored tree, `crisp receive` fails in one line and leaves
    /// nothing, and the source tree, never killed, runs on with every page right.</summary>
    [RootFact]
    public void ALazyMigrationWhoseSourceFailsHalfWayKillsTheRestoredTreeAndTheSourceRunsOn()
    {
        const int mib = 64;
        string dir = _bench.Work;
        string[] argv = ["lazy_mem", dir, mib.ToString(), "rewrite"];
        int pid = _bench.Start(Support.Workloads.Build("lazy_mem"), argv);
        Bench.WaitFor(() => File.Exists(Path.Combine(dir, "ready")), "lazy_mem to fill its memory", 60);
        string images = ReceiveDir();
        int port = PageServerTests.FreePort();
        var receiver = _hosts.StartReceiver(images, port, []);
        var r = CrispCli.Run(Slow, new Dictionary<string, string> { ["CRISP_FAULT"] = "migrate:lazy-pages" },
            ["migrate", "-t", pid.ToString(), "--to", $"{_hosts.There}:{port}", "--lazy", "--iterations", "0"]);
        output.WriteLine($"migrate: exit {r.ExitCode}\n{r.Stderr.Trim()}");
        Assert.Equal(1, r.ExitCode);
        AssertFailedWith(r.Stderr, "fault injected at migrate:lazy-pages");
        Assert.Equal(1, receiver.Wait());
        output.WriteLine($"receive: {receiver.Stderr.Trim()}");
        FailureSafetyTests.AssertOneLine(receiver.Stderr, "the restored tree was killed");
        Assert.Empty(Directory.GetFileSystemEntries(images));
        Bench.WaitFor(() => Running(argv).SequenceEqual([pid]), "only the source tree to be left");
        long last = Ticks(dir)[^1].Tick;
        Bench.WaitFor(() => Ticks(dir)[^1].Tick >= last + 3, "the source tree to tick on");
        Assert.All(Ticks(dir).TakeLast(3), t => Assert.Equal(t.Total, t.Resident));
        Crisp.Linux.Signals.Kill(pid, Live.SIGUSR1);
        string verdict = Path.Combine(dir, "verdict");
        Bench.WaitFor(() => File.Exists(verdict) && File.ReadAllText(verdict).EndsWith('\n'), "lazy_mem's verdict", 60);
        Assert.Equal("PASS", File.ReadAllText(verdict).Trim());
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

    /// <summary>Also with --lazy: the target's daemon, still waiting for the restore, is woken and its pages
    /// connection closed, and the source hears the target's line.</summary>
    [RootTheory]
    [InlineData(false)]
    [InlineData(true)]
    public void ARestoreThatFailsOnTheTargetLeavesTheSourceRunningAndNothingThere(bool lazy)
    {
        var (pid, counter) = StartCounter();
        string images = ReceiveDir();
        int port = PageServerTests.FreePort();
        var receiver = _hosts.StartReceiver(images, port, [], env: "CRISP_FAULT=restore:puppets");
        var r = Migrate(pid, port, ["--iterations", "1", .. lazy ? new[] { "--lazy" } : []]);
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
