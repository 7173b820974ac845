using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Crisp.Linux;
using Crisp.Tests.Integration;
using Crisp.Tests.Support;
using Xunit.Abstractions;

namespace Crisp.Tests.Migration;

/// <summary>Issue 17 part 3: lazy restore (post-copy). tests/workloads/lazy_mem.c, PID 1 of its own pid namespace (so
/// a restore can run while the dumped tree still exists: it gets a fresh namespace), fills its memory from each page's
/// index and ticks every 10 ms, logging how many of its pages are resident (mincore). The restored tree must tick
/// while pages are still missing — the daemon's own count says how many were in when the tree was let go — and then
/// find every page right.</summary>
public class LazyPagesTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Slow = TimeSpan.FromMinutes(3);

    /// <summary>lazy_mem under `unshare --fork --pid`, our child in its own session; <see cref="Root"/> is the
    /// workload (unshare's only child).</summary>
    private sealed class LazyMem : IDisposable
    {
        private readonly Live.TempDir _dir = new();
        private readonly int _unshare;
        private bool _reaped;

        public LazyMem(int mib, bool fork = false, string workload = "lazy_mem")
        {
            Exe = Support.Workloads.Build(workload);
            string[] args = workload == "lazy_mem" ? [Dir, mib.ToString(), .. fork ? new[] { "fork" } : []] : [Dir];
            _unshare = Spawn.Start("/usr/bin/unshare", ["unshare", "--fork", "--pid", Exe, .. args],
                new SpawnOptions { NewSession = true, Opens = Live.DevNullStdio });
            Live.WaitFor(() => File.Exists(Path.Combine(Dir, "ready")) || Spawn.TryReap(_unshare) is not null, "lazy_mem to get ready", TimeSpan.FromSeconds(60));
            Assert.True(File.Exists(Path.Combine(Dir, "ready")), "lazy_mem exited before it was ready");
            Root = Namespaces.PidNamespaceTests.Children(_unshare).Single();
            Pages = mib * 256;
        }

        public string Exe { get; }
        public string Dir => _dir.Path;
        public string Images => Path.Combine(Dir, "images");
        public int Root { get; }
        public int Pages { get; }
        /// <summary>The restored root's host pid (from the restore's --pidfile).</summary>
        public int Restored { get; set; }

        /// <summary>(tick, resident pages, buffer pages) per line of DIR/ticks.</summary>
        public List<(long Tick, long Resident, long Total)> Ticks() =>
            [.. File.ReadAllLines(Path.Combine(Dir, "ticks")).Select(l => l.Split(' ')).Where(f => f.Length == 3)
                .Select(f => (long.Parse(f[0]), long.Parse(f[1]), long.Parse(f[2])))];

        /// <summary>The source is gone (killed by its dump): unshare ends with it.</summary>
        public void ReapSource()
        {
            Live.ReapWithin(_unshare);
            _reaped = true;
        }

        /// <summary>SIGUSR1 to the restored root: every page checked, the verdict must be PASS.</summary>
        public void ExpectPass()
        {
            Signals.Kill(Restored, Live.SIGUSR1);
            string verdict = Path.Combine(Dir, "verdict");
            Live.WaitFor(() => File.Exists(verdict) && File.ReadAllText(verdict).EndsWith('\n'), "lazy_mem's verdict", TimeSpan.FromSeconds(60));
            Assert.Equal("PASS", File.ReadAllText(verdict).Trim());
            Live.WaitPidsFree([Restored]);
            Restored = 0;
        }

        /// <summary>Every lazy_mem process still alive (of this test's binary).</summary>
        public int[] Alive() => [.. Directory.EnumerateDirectories("/proc").Select(Path.GetFileName).Where(n => n!.All(char.IsDigit)).Select(int.Parse!)
            .Where(p => { try { return new FileInfo($"/proc/{p}/exe").LinkTarget == Exe && File.ReadAllText($"/proc/{p}/cmdline").Contains(Dir); } catch (IOException) { return false; } })];

        public void Dispose()
        {
            if (Restored > 0)
                RawSyscall.TryCall(Sysno.kill, Restored, Live.SIGKILL);
            if (!_reaped)
            {
                RawSyscall.TryCall(Sysno.kill, Root, Live.SIGKILL);
                RawSyscall.TryCall(Sysno.kill, _unshare, Live.SIGKILL);
                Live.ReapWithin(_unshare);
            }
            _dir.Dispose();
        }
    }

    /// <summary>A crisp command running in the background, its output collected.</summary>
    private sealed class Background : IDisposable
    {
        private readonly Process _p;
        private readonly StringBuilder _out = new(), _err = new();

        public Background(params string[] args) : this(null, args)
        {
        }

        public Background(IReadOnlyDictionary<string, string>? env, params string[] args)
        {
            var psi = new ProcessStartInfo(CrispCli.Exe) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
            foreach (var (k, v) in env ?? new Dictionary<string, string>())
                psi.Environment[k] = v;
            foreach (var a in args)
                psi.ArgumentList.Add(a);
            _p = new Process { StartInfo = psi };
            _p.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (_out) _out.AppendLine(e.Data); };
            _p.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (_err) _err.AppendLine(e.Data); };
            _p.Start();
            _p.BeginOutputReadLine();
            _p.BeginErrorReadLine();
        }

        public int Pid => _p.Id;
        public bool HasExited => _p.HasExited;
        public string Stdout { get { lock (_out) return _out.ToString(); } }
        public string Stderr { get { lock (_err) return _err.ToString(); } }

        public int Wait()
        {
            Assert.True(_p.WaitForExit(120_000), "crisp did not end");
            _p.WaitForExit();   // the output read to its end
            return _p.ExitCode;
        }

        public void Dispose()
        {
            if (!_p.HasExited)
                _p.Kill();
            _p.Dispose();
        }
    }

    private static int FreePort()
    {
        var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        int port = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }

    /// <summary>`crisp lazy-pages` once its socket listens.</summary>
    private static Background StartDaemon(LazyMem w, params string[] extra) => StartDaemon(w, null, extra);

    private static Background StartDaemon(LazyMem w, IReadOnlyDictionary<string, string>? env, params string[] extra)
    {
        var daemon = new Background(env, ["lazy-pages", "-D", w.Images, .. extra]);
        string socket = Path.Combine(w.Images, "lazy-pages.socket");
        Live.WaitFor(() => daemon.HasExited || File.Exists(socket), "the lazy-pages socket", TimeSpan.FromSeconds(20));
        Assert.False(daemon.HasExited, $"lazy-pages exited: {daemon.Stderr}");
        return daemon;
    }

    /// <summary>`dump --lazy-pages` once it serves (the images are written, the tree stays stopped).</summary>
    private static Background StartLazyDump(LazyMem w, int port, string[]? extra = null)
    {
        var dump = new Background(["dump", "-t", w.Root.ToString(), "-D", w.Images, "--lazy-pages", "--address", "127.0.0.1", "--port", port.ToString(), .. extra ?? []]);
        Live.WaitFor(() => dump.HasExited || dump.Stdout.Contains("lazy pages: serving on"), "the lazy dump to serve", Slow);
        Assert.False(dump.HasExited, $"dump --lazy-pages exited: {dump.Stderr}");
        return dump;
    }

    private CrispCli.Result Restore(LazyMem w)
    {
        string pidfile = Path.Combine(w.Dir, "restored.pid");
        var r = CrispCli.Run(Slow, "restore", "--lazy-pages", "-d", "-D", w.Images, "--pidfile", pidfile);
        output.WriteLine($"restore: exit {r.ExitCode} {r.Stderr.Trim()}");
        if (r.ExitCode == 0)
            w.Restored = int.Parse(File.ReadAllText(pidfile).Trim());
        return r;
    }

    /// <summary>The daemon's summary: (pages, on fault, pushed, in when the tree started running, pending pages
    /// moved by mremap).</summary>
    private static (long Total, long Fault, long Pushed, long AtRelease, long Remapped) Summary(string stdout)
    {
        var line = stdout.Split('\n').Single(l => l.StartsWith("lazy pages: ", StringComparison.Ordinal));
        var n = System.Text.RegularExpressions.Regex.Matches(line, @"\d+").Select(m => long.Parse(m.Value)).ToArray();
        return (n[0], n[1], n[2], n[3], n[4]);
    }

    /// <summary>The tree ran before its last page was in: the daemon counted fewer pages in at release than in all,
    /// and a tick after the restore saw part of the buffer missing. Returns that tick.</summary>
    private (long Tick, long Resident, long Total) AssertRanBeforeTheLastPage(LazyMem w, string daemonOut, long ticksAtDump)
    {
        var (total, fault, pushed, atRelease, _) = Summary(daemonOut);
        output.WriteLine($"daemon: {total} pages, {fault} on fault, {pushed} pushed, {atRelease} in at release");
        Assert.True(total >= w.Pages, $"the daemon filled {total} pages, the buffer alone has {w.Pages}");
        Assert.True(fault + pushed >= total, "the daemon copied fewer pages than it had to");   // more: a forked child's
        Assert.True(atRelease < w.Pages, $"{atRelease} of {total} pages were in when the tree was let go");
        Live.WaitFor(() => w.Ticks().Count > ticksAtDump + 5, "the restored tree to tick", TimeSpan.FromSeconds(30));
        var after = w.Ticks().Skip((int)ticksAtDump).ToList();
        Assert.True(after[0].Tick > ticksAtDump, "ticks after the restore go on from the dumped count");
        var partial = after.FirstOrDefault(t => t.Resident < t.Total);
        output.WriteLine($"first ticks after restore: {string.Join(", ", after.Take(4).Select(t => $"{t.Tick}:{t.Resident}/{t.Total}"))}");
        Assert.True(partial.Total > 0, "no tick of the restored tree saw a page missing");
        return partial;
    }

    [RootFact]
    public void ALazyRestoreFromLocalImagesRunsBeforeItsLastPageAndEndsWithEveryPageInItAndAChildItForks()
    {
        // The workload forks as soon as it sees pages missing: the child must see the dumped pages too.
        using var w = new LazyMem(64, fork: true);
        var dump = CrispCli.Run(Slow, "dump", "-t", w.Root.ToString(), "-D", w.Images);
        Assert.True(dump.ExitCode == 0, dump.Stderr);
        w.ReapSource();
        long ticks = w.Ticks().Count;
        using var daemon = StartDaemon(w);
        Assert.Equal(0, Restore(w).ExitCode);
        Assert.True(daemon.Wait() == 0, $"lazy-pages failed: {daemon.Stderr}");
        AssertRanBeforeTheLastPage(w, daemon.Stdout, ticks);
        Assert.False(File.Exists(Path.Combine(w.Images, "lazy-pages.socket")), "the daemon left its socket");
        w.ExpectPass();
    }

    /// <summary>The issue's lazy test: the 256 MiB workload, its pages served by the source's dump.</summary>
    [RootFact]
    public void ALazyMigrationThroughThePageServerRunsBeforeItsLastPageAndEndsWithEveryPage()
    {
        using var w = new LazyMem(256);
        string port = FreePort().ToString();
        using var dump = StartLazyDump(w, int.Parse(port));
        // The lazy pages are not in the images: only the non-lazy ones (a few pages) are stored.
        long stored = Directory.EnumerateFiles(w.Images, "pages-*.img").Sum(f => new FileInfo(f).Length) / 4096;
        Assert.True(stored < w.Pages / 16, $"{stored} pages stored by dump --lazy-pages");
        Assert.True(w.Alive().Contains(w.Root), "the source tree stays (stopped) while its pages are served");
        long ticks = w.Ticks().Count;
        using var daemon = StartDaemon(w, "--page-server", "--address", "127.0.0.1", "--port", port);
        Assert.Equal(0, Restore(w).ExitCode);
        Assert.True(daemon.Wait() == 0, $"lazy-pages failed: {daemon.Stderr}");
        Assert.True(dump.Wait() == 0, $"dump --lazy-pages failed: {dump.Stderr}");
        w.ReapSource();   // killed once every page was sent
        AssertRanBeforeTheLastPage(w, daemon.Stdout, ticks);
        Live.AssertCritDecodesAll(w.Images);
        w.ExpectPass();
    }

    /// <summary>The lazy link over TLS (--tls on the dump and the daemon, CRIU's option names): the restored tree
    /// runs before its last page and ends with every page.</summary>
    [RootFact]
    public void ALazyMigrationOverTlsRunsBeforeItsLastPageAndEndsWithEveryPage()
    {
        using var certs = new TestCerts();
        using (var w = new LazyMem(128))
        {
            string port = FreePort().ToString();
            using var dump = StartLazyDump(w, int.Parse(port), certs.Options("server"));
            long ticks = w.Ticks().Count;
            using var daemon = StartDaemon(w, ["--page-server", "--address", "127.0.0.1", "--port", port, .. certs.Options("client")]);
            Assert.Equal(0, Restore(w).ExitCode);
            Assert.True(daemon.Wait() == 0, $"lazy-pages failed: {daemon.Stderr}");
            Assert.True(dump.Wait() == 0, $"dump --lazy-pages failed: {dump.Stderr}");
            w.ReapSource();
            AssertRanBeforeTheLastPage(w, daemon.Stdout, ticks);
            w.ExpectPass();
        }
    }

    /// <summary>Issue 17: mremap of lazy memory before its pages are in. tests/workloads/lazy_remap.c, restored lazily
    /// with the background push paced (CRISP_LAZY_PUSH_PAUSE_MS), moves part of an area (MREMAP_FIXED), grows one
    /// (it moves), shrinks one, moves one with MREMAP_DONTUNMAP and splits one with mprotect as soon as it sees pages
    /// missing; it reports how many of the pages it moved were not in yet, the daemon how many pending pages it moved
    /// along (the remap event). Every byte must then be right where it is now, and zeros where the program expects
    /// fresh memory. Without the remap event the moved, grown and DONTUNMAP-moved pages read as zeros and D's old
    /// range gets stale pages pushed; without the page-by-page retry after ENOENT a push across E's split drops pages
    /// (checked once by hand).</summary>
    [RootFact]
    public void MremapOfLazyMemoryBeforeItsPagesAreInKeepsEveryByte()
    {
        using var w = new LazyMem(0, workload: "lazy_remap");
        var dump = CrispCli.Run(Slow, "dump", "-t", w.Root.ToString(), "-D", w.Images);
        Assert.True(dump.ExitCode == 0, dump.Stderr);
        w.ReapSource();
        using var daemon = StartDaemon(w, new Dictionary<string, string> { [Crisp.Resources.Memory.Lazy.LazyPagesDaemon.PushPauseVariable] = "20" });
        Assert.Equal(0, Restore(w).ExitCode);
        Assert.True(daemon.Wait() == 0, $"lazy-pages failed: {daemon.Stderr}");
        var (total, fault, pushed, atRelease, remapped) = Summary(daemon.Stdout);
        output.WriteLine($"daemon: {total} pages, {fault} on fault, {pushed} pushed, {atRelease} in at release, {remapped} moved by mremap while pending");
        string movedFile = Path.Combine(w.Dir, "moved");
        Live.WaitFor(() => File.Exists(movedFile), "lazy_remap to move its areas", TimeSpan.FromSeconds(30));
        var moved = File.ReadAllLines(movedFile).Select(l => l.Split(' ')).ToDictionary(f => f[0], f => (Missing: long.Parse(f[1]), Of: long.Parse(f[2])));
        output.WriteLine(string.Join(", ", moved.Select(kv => $"{kv.Key}: {kv.Value.Missing} of {kv.Value.Of} missing")));
        foreach (var op in new[] { "move", "grow", "dontunmap" })
            Assert.True(moved[op].Missing > 0, $"{op}: every page was in before the workload moved it");
        w.ExpectPass();   // without the remap event: FAIL, the moved pages are zeros
        Assert.True(remapped > 0, "the daemon moved no pending page along (no remap event)");
    }

    [RootFact]
    public void AKilledSourceFailsTheDaemonInOneLineAndTheRestoredTreeIsKilled()
    {
        using var w = new LazyMem(32);
        string port = FreePort().ToString();
        using var dump = StartLazyDump(w, int.Parse(port));
        using var daemon = StartDaemon(w, "--page-server", "--address", "127.0.0.1", "--port", port);
        Signals.Kill(dump.Pid, Live.SIGKILL);   // the source side dies before the restore has its pages
        dump.Wait();
        var restore = Restore(w);
        Assert.Equal(1, daemon.Wait());
        output.WriteLine(daemon.Stderr);
        FailureSafetyTests.AssertOneLine(daemon.Stderr, $"page server 127.0.0.1:{port}");
        Assert.Contains("the restored tree was killed", daemon.Stderr);
        if (restore.ExitCode == 0)
            Live.WaitPidsFree([w.Restored]);   // let go before its first missing page: killed by the daemon
        else
            FailureSafetyTests.AssertOneLine(restore.Stderr, "lazy-pages daemon");
        w.Restored = 0;
        // The source runs on (its dump died, so ptrace let it go); killed here, nothing of the test may remain.
        RawSyscall.TryCall(Sysno.kill, w.Root, Live.SIGKILL);
        w.ReapSource();
        Live.WaitFor(() => w.Alive().Length == 0, "no lazy_mem left", TimeSpan.FromSeconds(15));
        Assert.False(File.Exists(Path.Combine(w.Images, "lazy-pages.socket")), "the daemon left its socket");
    }

    [RootFact]
    public void APlainRestoreOfALazyDumpIsRefusedInOneLine()
    {
        using var w = new LazyMem(8);
        using var dump = StartLazyDump(w, FreePort());
        // The source dies first, while the dump still holds it: let go, it would write its ticks file on.
        RawSyscall.TryCall(Sysno.kill, w.Root, Live.SIGKILL);
        RawSyscall.TryCall(Sysno.kill, dump.Pid, Live.SIGKILL);
        dump.Wait();
        w.ReapSource();
        var r = CrispCli.Run(Slow, "restore", "-d", "-D", w.Images);
        Assert.Equal(1, r.ExitCode);
        FailureSafetyTests.AssertOneLine(r.Stderr, "are lazy (a dump --lazy-pages)");
        Live.WaitFor(() => w.Alive().Length == 0, "no lazy_mem left", TimeSpan.FromSeconds(15));
    }

    [RootFact]
    public void APageServerThatHangsUpInTheMiddleOfAnAnswerFailsTheDaemonAndTheRestoredTreeIsKilled()
    {
        using var w = new LazyMem(16);
        using (var dump = StartLazyDump(w, FreePort()))
        {
            // Only its images are wanted here. The source dies first, while the dump still holds it: let go, it
            // would write its ticks file on, and the restore would warn that the file grew.
            RawSyscall.TryCall(Sysno.kill, w.Root, Live.SIGKILL);
            Signals.Kill(dump.Pid, Live.SIGKILL);
            dump.Wait();
        }
        w.ReapSource();
        // A page server that answers the first PS_IOV_GET with its header and half of the pages, then hangs up.
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        var fake = Task.Run(() =>
        {
            using var s = listener.AcceptSocket();
            var iov = new byte[Crisp.Images.PageServer.PageServerIov.Size];
            for (int got = 0; got < iov.Length;)
            {
                int n = s.Receive(iov, got, iov.Length - got, SocketFlags.None);
                if (n == 0)
                    return;
                got += n;
            }
            var asked = Crisp.Images.PageServer.PageServerIov.Read(iov);
            new Crisp.Images.PageServer.PageServerIov(Crisp.Images.PageServer.PageServerIov.WithFlags(Crisp.Images.PageServer.PageServerIov.AddF, Crisp.Images.PagemapFlags.Present),
                asked.NrPages, asked.Vaddr, asked.DstId).Write(iov);
            s.Send(iov);
            s.Send(new byte[asked.NrPages * 4096 / 2]);
            s.Close();
        });
        using var daemon = StartDaemon(w, "--page-server", "--address", "127.0.0.1", "--port", port.ToString());
        var restore = Restore(w);
        Assert.Equal(1, daemon.Wait());
        fake.Wait();
        listener.Stop();
        output.WriteLine(daemon.Stderr);
        FailureSafetyTests.AssertOneLine(daemon.Stderr, "connection closed while waiting for the pages of PS_IOV_GET");
        Assert.Contains("the restored tree was killed", daemon.Stderr);
        if (restore.ExitCode == 0)
            Live.WaitPidsFree([w.Restored]);
        else
            FailureSafetyTests.AssertOneLine(restore.Stderr, "lazy-pages daemon");
        w.Restored = 0;
        Live.WaitFor(() => w.Alive().Length == 0, "no lazy_mem left", TimeSpan.FromSeconds(15));
    }
}
