using System.Buffers.Binary;
using System.Diagnostics;
using System.Text;
using Crisp.Dump;

namespace Crisp.Migration;

/// <summary>What `crisp migrate` was asked to do.</summary>
public sealed record MigrationOptions
{
    /// <summary>The dump's options (root pid, timeout, --tcp-established, …); the images dir is chosen here.</summary>
    public required DumpOptions Dump { get; init; }
    public required string Host { get; init; }
    public required int Port { get; init; }
    public Security.Tls.TlsSettings? Tls { get; init; }
    /// <summary>At most this many pre-dumps before the final dump.</summary>
    public int Iterations { get; init; } = 3;
    /// <summary>Stop pre-dumping once one stored fewer pages than this (null: always <see cref="Iterations"/>).</summary>
    public long? UntilDirtyBelow { get; init; }
    /// <summary>--lazy: the final dump leaves the pages written since the last pre-dump in the stopped tree, and the
    /// target's restore runs the tree while they are fetched (post-copy); the tree here is killed once every one is there.</summary>
    public bool Lazy { get; init; }
    /// <summary>Where the local images of the iterations are kept meanwhile (null: the temp directory).</summary>
    public string? TempDir { get; init; }
    /// <summary>CRISP_FAULT: "migrate:lazy-pages" fails the source once half of the lazy pages are sent (the tree
    /// runs on the target by then: the pages are being pushed).</summary>
    public FaultInjection Faults { get; init; } = FaultInjection.None;
    /// <summary>One line per iteration (the CLI prints them on stderr).</summary>
    public Action<string>? Report { get; init; }
}

/// <summary>The source end of `crisp migrate`: the tree's memory is pre-dumped while it runs (each iteration stores
/// only the pages written since the one before, as a pre-dump chain), each iteration's images are shipped to `crisp
/// receive` over one connection (<see cref="MigrationChannel"/>) and written there into the same chain, then the
/// final dump stops the tree for the rest. While the tree is still seized its images are shipped, the target
/// restores them and answers that the restored tree runs; only then is the source tree killed. Any failure before
/// that — the connection, the target's restore — lets the source tree go on running; the local images live in a
/// private temp directory that is removed in every case.</summary>
public sealed class MigrationSource(MigrationOptions options, Log log)
{
    private static readonly TimeSpan ReplyTimeout = TimeSpan.FromMinutes(5);

    public sealed record Result(int TargetRootPid, int PreDumps, long FinalPages, TimeSpan Frozen);

    public Result Run()
    {
        string peer = $"migrate to {options.Host}:{options.Port}";
        string work = MakeWorkDir();
        try
        {
            using var channel = Connect(peer);
            try
            {
                string? last = PreDumps(channel, work, out int preDumps);
                return Final(channel, work, last, preDumps);
            }
            catch when (_lastPreDump is not null)
            {
                EndTracking(Path.Combine(work, _lastPreDump));
                throw;
            }
        }
        finally
        {
            try { Directory.Delete(work, recursive: true); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { log.Warn($"migrate: cannot remove {work}: {e.Message}"); }
        }
    }

    /// <summary>A connection to `crisp receive`, hellos exchanged.</summary>
    private MigrationChannel Connect(string peer)
    {
        var tcp = Images.PageServer.PageServerClient.TcpConnect(options.Host, options.Port, options.Dump.Timeout, peer);
        tcp.ReadTimeout = (int)ReplyTimeout.TotalMilliseconds;
        Stream stream = options.Tls is { } tls ? tls.Client(tcp, options.Host, peer, options.Dump.Timeout) : tcp;
        var channel = new MigrationChannel(stream, peer);
        try
        {
            channel.SendHello();
            channel.ExpectHello();
        }
        catch
        {
            channel.Dispose();
            throw;
        }
        return channel;
    }

    /// <summary>The last pre-dump that armed tracking in the tree (its directory name), until the final dump.</summary>
    private string? _lastPreDump;

    /// <summary>The migration failed: the tree runs on, without the tracking the pre-dumps left in it.</summary>
    private void EndTracking(string lastPreDump)
    {
        try
        {
            PreDumper.EndTracking(options.Dump with { ImagesDir = lastPreDump, PrevImagesDir = null }, log);
        }
        catch (Exception e)
        {
            log.Warn($"migrate: could not end the memory tracking in the tree: {e.Message}");
        }
    }

    private string MakeWorkDir()
    {
        string parent = options.TempDir ?? Path.GetTempPath();
        string dir = Path.Combine(parent, $"crisp-migrate-{Environment.ProcessId}-{Guid.NewGuid():N}");
        Security.PrivateFile.CreateDirectory(dir, Security.ImageModes.Private.Directory);
        return dir;
    }

    /// <summary>Pre-dump iterations, each shipped; returns the last one's directory name (null: none ran).</summary>
    private string? PreDumps(MigrationChannel channel, string work, out int count)
    {
        string? last = null;
        count = 0;
        long lastStart = 0;
        for (int i = 1; i <= options.Iterations; i++)
        {
            string name = $"pre{i}";
            long start = Stopwatch.GetTimestamp();
            var stats = new PreDumper(options.Dump with
            {
                ImagesDir = Path.Combine(work, name),
                ImagesDirCreated = true,
                PrevImagesDir = last is null ? null : $"../{last}",
                LeaveRunning = true,
                TrackMem = true,
                PageServer = null,
            }, log).Run();
            long shipped = channel.FileBytes;
            Ship(channel, Path.Combine(work, name), name);
            shipped = channel.FileBytes - shipped;
            // The next dumps need only this iteration's pagemaps here (to know what the parent holds).
            foreach (var pages in Directory.EnumerateFiles(Path.Combine(work, name), "pages-*.img"))
                File.Delete(pages);
            var took = Stopwatch.GetElapsedTime(start);
            long stored = stats.Counters.PagesWritten;
            string dirty = last is null ? "" : $", dirtied {stored / Math.Max(Stopwatch.GetElapsedTime(lastStart, start).TotalSeconds, 1e-3):F0} pages/s";
            options.Report?.Invoke($"pre-dump {i}: {stored} pages ({Mib(stored * 4096):F1} MiB), {Mib(shipped) / Math.Max(took.TotalSeconds, 1e-3):F1} MiB/s, " +
                $"frozen {stats.Counters.Frozen.TotalMilliseconds:F0} ms{dirty}");
            lastStart = start;
            last = _lastPreDump = name;
            count = i;
            if (options.UntilDirtyBelow is { } below && i > 1 && stored < below)
                break;
        }
        return last;
    }

    /// <summary>The final dump: the tree stays seized while its images go over and the target restores them; it is
    /// killed only when the target says the restored tree runs.</summary>
    private Result Final(MigrationChannel channel, string work, string? last, int preDumps)
    {
        int targetPid = 0;
        string? lockTable = null;
        long shipStart = 0;
        TimeSpan shipping = default, restoring = default;
        long lazyPages = -1, lazyAfterRunning = 0;
        var flags = (options.Dump.TcpEstablished ? RestoreFlags.TcpEstablished : RestoreFlags.None) | (options.Lazy ? RestoreFlags.Lazy : RestoreFlags.None);
        var dumper = new Dumper(options.Dump with
        {
            ImagesDir = Path.Combine(work, "final"),
            ImagesDirCreated = true,
            PrevImagesDir = last is null ? null : $"../{last}",
            LeaveRunning = false,
            LeaveStopped = false,
            TrackMem = false,
            PageServer = null,
            LazyHandoff = options.Lazy,
        }, log)
        {
            Handoff = ctx =>
            {
                lockTable = ctx.Files.TcpRepaired.Lock is { Holds: true } held ? held.Table : null;
                shipStart = Stopwatch.GetTimestamp();
                Ship(channel, Path.Combine(work, "final"), "final");
                shipping = Stopwatch.GetElapsedTime(shipStart);
                var payload = new byte[4 + "final".Length];
                BinaryPrimitives.WriteUInt32LittleEndian(payload, (uint)flags);
                Encoding.UTF8.GetBytes("final", payload.AsSpan(4));
                channel.Send(MigrationFrame.Restore, payload);
                var (type, answer) = options.Lazy
                    ? ServeLazyPages(ctx, channel, out lazyPages, out lazyAfterRunning, () => restoring = Stopwatch.GetElapsedTime(shipStart) - shipping)
                    : channel.Receive("the target's restore");
                if (!options.Lazy)
                    restoring = Stopwatch.GetElapsedTime(shipStart) - shipping;
                targetPid = type switch
                {
                    MigrationFrame.Running when answer.Length == 4 => BinaryPrimitives.ReadInt32LittleEndian(answer),
                    MigrationFrame.Failed => throw new CrispException($"{channel.Peer}: the target could not restore the tree: {Encoding.UTF8.GetString(answer)}"),
                    _ => throw new CrispException($"{channel.Peer}: unexpected answer {type} to the restore"),
                };
            },
        };
        var stats = dumper.Run();
        // The source tree is gone: from here the restored one is the tree.
        channel.Send(MigrationFrame.Done, []);
        long pages = stats.Counters.PagesWritten;
        options.Report?.Invoke($"final dump: {pages} pages ({Mib(pages * 4096):F1} MiB), tree frozen {stats.Counters.Frozen.TotalMilliseconds:F0} ms " +
            $"(shipping {shipping.TotalMilliseconds:F0} ms, target restore {restoring.TotalMilliseconds:F0} ms); it runs on the target as pid {targetPid}");
        if (lazyPages >= 0)
            options.Report?.Invoke($"lazy pages: {lazyPages} served from the stopped tree, {lazyAfterRunning} of them once it ran on the target " +
                $"(it ran there {(shipping + restoring).TotalMilliseconds:F0} ms after the final dump's images were complete)");
        // As after any dump that killed its tree: the lock stays until the connections' address leads to their
        // new socket, here to the target. Lifted now, the peers' packets would meet a host without it: a reset.
        if (lockTable is not null)
            options.Report?.Invoke($"the connections stay locked on this host until their address leads to the target; then: nft delete table inet {lockTable}");
        return new Result(targetPid, preDumps, pages, stats.Counters.Frozen);
    }

    /// <summary>--lazy, once the target was told to restore: a second connection carries the pages the final dump left
    /// in the tree, served to the target's lazy-pages daemon until it has every one, while the first one brings the
    /// target's answer (read on another thread: the restored tree runs, and faults, before the last page is sent).
    /// Returns that answer once every page is served; a failed restore or a lost connection is an error, and the
    /// tree here runs on (the target's daemon kills its restored copy when the pages stop).</summary>
    private (MigrationFrame Type, byte[] Payload) ServeLazyPages(DumpContext ctx, MigrationChannel channel, out long served, out long afterRunning, Action ran)
    {
        var server = Images.PageServer.LazyPagesServer.ForConnection(channel.Peer);
        long atAnswer = -1;
        var answer = Task.Run(() =>
        {
            var a = channel.Receive("the target's restore");
            atAnswer = server.PagesSent;
            ran();
            return a;
        });
        using (var pages = Connect($"{channel.Peer} (lazy pages)"))
        {
            pages.Send(MigrationFrame.Pages, []);
            var seized = new Resources.Memory.Lazy.SeizedPages(ctx.Memory.LazyRuns);
            long half = ctx.Memory.LazyRuns.Values.Sum(t => t.Runs.Sum(r => (long)r.Length)) / Images.PagemapWriter.PageSize / 2;
            try
            {
                server.ServeOn(pages.Stream, seized.Available, (pid, vaddr, into) =>
                {
                    if (server.PagesSent >= half)
                        options.Faults.At("migrate:lazy-pages");
                    seized.Read(pid, vaddr, into);
                });
            }
            catch (CrispException) when (answer.Wait(TimeSpan.FromSeconds(5)) && answer.Result.Type == MigrationFrame.Failed)
            {
                // The target's restore failed and it hung up the pages: its own line says why.
            }
        }
        var result = answer.GetAwaiter().GetResult();
        served = server.PagesSent;
        afterRunning = result.Type == MigrationFrame.Running ? served - Interlocked.Read(ref atAnswer) : 0;
        return result;
    }

    /// <summary>Every file of a checkpoint directory, and its `parent` link.</summary>
    private static void Ship(MigrationChannel channel, string dir, string name)
    {
        channel.Send(MigrationFrame.Directory, name);
        foreach (string path in Directory.EnumerateFileSystemEntries(dir).Order(StringComparer.Ordinal))
        {
            var info = new FileInfo(path);
            if (info.LinkTarget is { } target)
                channel.Send(MigrationFrame.Link, $"{info.Name}\0{target}");
            else if (info.Exists)
                channel.SendFile(path, info.Name);
        }
    }

    private static double Mib(long bytes) => bytes / 1048576.0;
}
