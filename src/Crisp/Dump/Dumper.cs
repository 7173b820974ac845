using System.Diagnostics;
using Crisp.Compel;
using Crisp.Images;
using Crisp.Images.Proto;
using Crisp.Linux;

namespace Crisp.Dump;

/// <summary>The dump pipeline: seize the tree, collect every kind of state of every task, write the
/// images, then kill the tree or let it run on. Any failure leaves the tree running as it was.</summary>
public sealed class Dumper(DumpOptions options, Log log, FaultInjection? faults = null)
{
    /// <summary>The dump's phases and participants (<see cref="DumpPipeline"/>).</summary>
    public static DumpPipeline Pipeline => DumpPipeline.Dump;

    /// <summary>Kinds of state, in the order they are collected.</summary>
    public static IReadOnlyList<IDumpStage> Stages => Pipeline.Collect;

    /// <summary>Called once the images are complete, while the tree is still seized and before it is killed or let go
    /// (crisp migrate ships the images here and waits until the target runs the restored tree). If it throws, the
    /// dump fails as any other: the tree is released and runs on.</summary>
    public Action<DumpContext>? Handoff { get; init; }

    /// <summary>PIDs of the tree once seized (for the full-disk message after a failure).</summary>
    private readonly List<int> _treePids = [options.RootPid];

    /// <summary>Dumps the tree. A failure leaves it running and the images directory as it was (see
    /// <see cref="DumpOutput"/>); a failing post-dump script leaves the complete images, as CRIU.</summary>
    public DumpStats Run()
    {
        var output = DumpOutput.Begin(options.ImagesDir, options.ImagesDirCreated, options.ImagesMode.Directory);
        DumpStats stats;
        try
        {
            stats = Dump();
        }
        catch (Scripts.ActionScriptException e) when (e.Action == "post-dump")
        {
            output.Commit();
            throw;
        }
        catch (Exception e)
        {
            var reported = output.Discard(e, _treePids);
            if (ReferenceEquals(reported, e))
                throw;
            throw reported;
        }
        output.Commit();
        return stats;
    }

    private DumpStats Dump()
    {
        var stats = new DumpStats();
        var clock = Stopwatch.StartNew();
        // A bad key fails the dump before the tree is touched.
        using var signKey = options.SignKey is { } keyPath ? Security.SigningKey.LoadPrivate(keyPath) : null;
        var key = options.EncryptKey is { } encryptKey ? Security.Encryption.ImageKey.Load(encryptKey) : null;
        using var images = ImageDirectory.Create(options.ImagesDir, options.ImagesMode, key, options.ImagesDirHandle);
        // A signature is only as strong as the hash it covers: SHA-256 then, else the fast XXH128.
        if (signKey is not null)
            images.ManifestHash = Images.Manifest.ManifestHash.Sha256;
        if (options.ImagesMode.ExposureWarning(images) is { } exposed)
            log.Warn(exposed);
        images.Progress = options.Progress;
        // Before the tree is touched: a page server that cannot be reached fails the dump here.
        using var pageServer = ConnectPageServer(options);
        images.PageServer = pageServer;
        using var lazyServer = ListenForLazyPages(options);
        Footprint.CgroupHeadroom.BeforeDump(log);
        options.Progress?.Begin("seizing");
        ImageManifest.Invalidate(images);
        Security.CheckpointSignature.Invalidate(images);
        using var tracer = new Tracer();
        using var ctx = new DumpContext(options, log, images, tracer, faults ?? FaultInjection.None);
        var scripts = options.Scripts ?? Scripts.ActionScripts.None;
        var counters = stats.Counters = ctx.Counters;
        // CRIU runs pre-dump before the tree is touched: a failing script leaves it as it was.
        scripts.InitPid = options.RootPid;
        scripts.RunOrThrow(Scripts.ScriptAction.PreDump);
        ctx.Plugins = Plugins.PluginLoader.Load(PluginRun(ctx));   // before anything is touched
        // --leave-running: the tree is let go as soon as its state and pages are held in crisp's memory, and the
        // pages are written after (design.md "Freeze time"). Not with a post-dump script or a plugin: CRIU runs
        // those while the tree is still frozen, and they may count on it.
        bool earlyRelease = options.LeaveRunning && scripts.IsEmpty && ctx.Plugins.Active.Count == 0;
        var treePids = earlyRelease ? TreePids(options.RootPid) : [];
        // In a pre-dump chain the dump holds what was written since the parent, not the whole tree.
        var chainTracking = earlyRelease && options.PrevImagesDir is { } prev
            ? Resources.Memory.ChainTracking.Find(prev, images.Path, treePids) : null;
        using var spool = earlyRelease
            ? Images.Pages.PageSpool.Reserve(chainTracking?.EstimatedBytes(treePids) ?? EstimatedTreeBytes(treePids), log) : null;
        images.Spool = spool;
        // A large tree's pages are copied while it runs, before the dump's own stop (design.md "Freeze time").
        using var running = spool is null ? null
            : chainTracking is not null ? (Resources.Memory.RunningCopy.AppliesInChain(options) ? Resources.Memory.RunningCopy.TakeInChain(chainTracking, log, tracer, spool, ctx.Memory.Batches) : null)
            : Resources.Memory.RunningCopy.Applies(options, (long)spool.Capacity)
            ? Resources.Memory.RunningCopy.Take(options, log, images, tracer, spool, ctx.Memory.Batches) : null;
        ctx.Memory.RunningCopy = running;
        bool released = false;
        try
        {
            DumpPipeline.Seize(ctx);
            stats.FrozenAt = clock.Elapsed;
            counters.Freezing = clock.Elapsed;
            ctx.Faults.At("dump:seized");
            SessionCheck.Verify(ctx);
            Resources.Core.SharedResources.Refuse(ctx);
            long treeBytes = ctx.Tasks.Sum(t => DumpOutput.ResidentBytes(t.Pid));
            Footprint.CgroupHeadroom.BeforePages(images.Path, treeBytes);
            options.Progress?.SetTotal(treeBytes);
            options.Progress?.Begin("dumping memory and state");
            foreach (var task in ctx.Tasks)
                ctx.Plugins.CheckpointDevices(task.Pid);
            // On the tracer thread: each remote syscall and ptrace request is then a call, not a hand-off between threads.
            tracer.Run(() =>
            {
                Pipeline.CollectAll(ctx);
                Pipeline.FinishAll(ctx);
            });
            ctx.Plugins.DumpDevicesLate(ctx.Tasks[0].Pid);
            if (spool is not null)
            {
                // Every piece of state is from the frozen moment now (the pages in the spool): let the tree go.
                foreach (var task in ctx.Tasks)
                    task.Dispose();
                ctx.Faults.At("dump:images");
                ctx.Plugins.Exit(succeeded: true);
                ReleaseRunning(ctx);
                released = true;
                counters.Frozen = clock.Elapsed - stats.FrozenAt + (running?.Frozen ?? TimeSpan.Zero);
                string stops = running is null || running.Frozen == TimeSpan.Zero ? "" : $" (two stops: {running.Frozen.TotalMilliseconds:F1} ms, then {(counters.Frozen - running.Frozen).TotalMilliseconds:F1} ms)";
                ctx.Log.Info($"tree released after {counters.Frozen.TotalMilliseconds:F1} ms frozen{stops}; writing {spool.Used >> 20} MiB of held pages");
                spool.Drain();
            }
            options.Progress?.Begin("writing images");
            WriteTree(ctx);
            pageServer?.Finish();   // every page is on the server before the dump counts as done
            if (pageServer is not null)
                ctx.Log.Info($"page server: {pageServer.PageBytes} page bytes sent as {pageServer.WireBytes} bytes");
            if (!released)
                ctx.Faults.At("dump:images");
            // DIR/parent and crisp-mem-track last: a dump that failed before leaves no link to a chain.
            ctx.Memory.Chain.Finish(ctx);
            foreach (var task in ctx.Tasks)
                task.Dispose();
            ImageManifest.Write(ctx.Images);
            if (signKey is not null)
                Security.CheckpointSignature.Sign(ctx.Images, signKey);
            // post-dump: the images (manifest included) are complete; a failing script (e.g. a migration
            // that could not copy them) leaves the tree running, and its exit code is crisp's (as CRIU).
            scripts.RunOrThrow(Scripts.ScriptAction.PostDump);
            stats.ImagesWrittenAt = clock.Elapsed;
            if (lazyServer is not null)
            {
                // The tree stays seized and stopped: the daemon gets the pages as they were dumped.
                var seized = new Resources.Memory.Lazy.SeizedPages(ctx.Memory.LazyRuns);
                ctx.Log.Info($"lazy pages: serving {ctx.Memory.LazyRuns.Values.Sum(t => t.Runs.Sum(r => (long)r.Length)) / PagemapWriter.PageSize} pages on {lazyServer.Endpoint}");
                options.LazyServing?.Invoke(lazyServer.Endpoint);
                lazyServer.Serve(seized.Available, seized.Read);
                ctx.Log.Info($"lazy pages: {lazyServer.PagesSent} pages sent; the daemon said PS_IOV_CLOSE");
            }
            Handoff?.Invoke(ctx);
        }
        catch
        {
            if (!released)
            {
                _treePids.AddRange(ctx.Tasks.Select(t => t.Pid).Where(p => p != options.RootPid));
                Pipeline.Release(ctx, killed: false);
                TreeRelease.LetGo(ctx, exitPlugins: true);
            }
            throw;
        }
        if (!released)
        {
            ctx.Plugins.Exit(succeeded: true);   // while the tasks are still seized: a device plugin may need them
            if (options.LeaveRunning)
                ReleaseRunning(ctx);
            else if (options.LeaveStopped)
            {
                // Queued while still traced: once detached, each task takes the SIGSTOP and stays stopped.
                foreach (var task in ctx.Tasks)
                    Signals.TryKill(task.Pid, Signals.SIGSTOP);
                TreeRelease.DetachAll(ctx);
                TreeRelease.RestoreFreezerState(ctx);
            }
            else
            {
                KillAll(ctx);
                Pipeline.Release(ctx, killed: true);
                TreeRelease.RestoreFreezerState(ctx);
            }
            counters.Frozen = clock.Elapsed - stats.FrozenAt;
        }
        // Last: the dump is complete and the tree where it should be; only now are its parents changed.
        if (options.AutoDedup && ctx.Memory.Chain.Parent is not null)
            Resources.Memory.AutoDedup.Run(ctx.Images, ctx.Log);
        running?.Keep();
        stats.Total = clock.Elapsed;
        stats.Tasks = ctx.Tasks.Count;
        ctx.Log.Info($"dump done: {stats.Tasks} task(s) in {stats.Total.TotalMilliseconds:F1} ms");
        return stats;
    }

    /// <summary>--leave-running: the tree runs on. A cgroup the runtime had frozen is frozen again before the
    /// tasks are let go, so they never run in between.</summary>
    private static void ReleaseRunning(DumpContext ctx)
    {
        if (ctx.Freezer is { WasFrozen: true } frozen)
            frozen.RequestFreeze();
        Pipeline.Release(ctx, killed: false);
        TreeRelease.DetachAll(ctx);
        TreeRelease.RestoreFreezerState(ctx);
    }

    /// <summary>Before the seize, for the page spool: the anonymous and shared resident bytes of the tree under
    /// <paramref name="root"/> (children read from /proc), with some room for what it adds before it is frozen.</summary>
    private static long EstimatedTreeBytes(IEnumerable<int> treePids)
    {
        long bytes = treePids.Sum(DumpOutput.ResidentBytes);
        return bytes + bytes / 16 + (4L << 20);
    }

    /// <summary>The tree's pids as /proc shows it before the seize (children files).</summary>
    private static HashSet<int> TreePids(int root)
    {
        var todo = new Stack<int>();
        todo.Push(root);
        var seen = new HashSet<int>();
        while (todo.Count > 0)
        {
            int pid = todo.Pop();
            if (!seen.Add(pid))
                continue;
            try
            {
                foreach (var dir in Directory.EnumerateDirectories(Linux.Proc.Procfs.Host.Path(pid, "task")))
                    foreach (var child in File.ReadAllText(Path.Combine(dir, "children")).Split(' ', StringSplitOptions.RemoveEmptyEntries))
                        todo.Push(int.Parse(child));
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException) { }
        }
        return seen;
    }

    /// <summary>The page server of --page-server, connected (null without one).</summary>
    public static Images.PageServer.PageServerClient? ConnectPageServer(DumpOptions options) =>
        options.PageServer is { } ps ? Images.PageServer.PageServerClient.Connect(ps.Address, ps.Port, options.Timeout, options.Tls, options.Compress) : null;

    /// <summary>dump --lazy-pages: the listening socket, made before the tree is touched (null without it).</summary>
    private static Images.PageServer.LazyPagesServer? ListenForLazyPages(DumpOptions options)
    {
        if (options.LazyPages is not { } lazy)
            return null;
        if (options.LeaveRunning || options.LeaveStopped || options.PageServer is not null || options.PrevImagesDir is not null || options.TrackMem || options.EncryptKey is not null)
            throw new CrispException("--lazy-pages serves the tree's pages itself and kills the tree after: it does not go with -R, -s, --page-server, --prev-images-dir, --track-mem or --encrypt-key");
        return Images.PageServer.LazyPagesServer.Listen(lazy.Address, lazy.Port, options.Tls);
    }

    /// <summary>Cores and pstree.img, numbered as the tree's own pid namespace numbers its tasks (virtual pids).</summary>
    private static void WriteTree(DumpContext ctx)
    {
        foreach (var task in ctx.Tasks)
        {
            // The kernel-object ids go to ids-PID.img as current CRIU writes and reads them (it ignores
            // core.ids); the cores keep them only in memory, for the stages.
            ctx.Images.Write(ImageFile.Ids(task.VirtualPid), task.Leader.Core.Ids);
            foreach (var thread in task.Threads)
            {
                var core = thread.Core;
                if (core.Ids is not null)
                {
                    core = core.Clone();
                    core.Ids = null;
                }
                ctx.Images.Write(ImageFile.Core(thread.VirtualTid), core);
            }
        }
        using (var pstree = ctx.Images.CreateWriter(ImageFile.Pstree))
        {
            foreach (var task in ctx.Tasks)
            {
                var entry = new pstree_entry
                {
                    Pid = (uint)task.VirtualPid,
                    Ppid = task.Parent is null ? 0 : (uint)task.Parent.VirtualPid,
                    Pgid = (uint)task.VirtualPgid,
                    Sid = (uint)task.VirtualSid,
                };
                entry.Threads.AddRange(task.Threads.Select(t => (uint)t.VirtualTid));
                if (task.NestedPids.Length > 0)
                {
                    entry.NsPids.AddRange(task.NestedPids.Select(p => (uint)p));
                    entry.NsTids.AddRange(task.Threads.SelectMany(t => t.NestedTids.Select(p => (uint)p)));
                }
                pstree.Write(entry);
            }
            DumpZombie.WriteAll(ctx, pstree);
        }
        // CRIU's root_ids are the dumping tool's own ids: fresh object ids (ids equal to the root task's would
        // tell CRIU's restore that the root shares crisp's files, fs and mm) and crisp's namespaces, so a restore
        // sees the tree's own namespaces as those whose ids differ from the root task's.
        var rootIds = Resources.Namespaces.NamespacesDump.InventoryRootIds(ctx);
        ctx.Images.Write(ImageFile.Inventory, new inventory_entry
        {
            ImgVersion = 2,             // CRIU's CRTOOLS_IMAGES_V1_1
            FdinfoPerId = true,
            NsPerId = true,
            RootIds = rootIds,
            Lsmtype = lsmtype.NoLsm,
            DumpUptime = (ulong)Environment.TickCount64 * 1000,
            PluginsEntry = ctx.Plugins.InventoryEntry(),
            NetworkLockMethod = (uint)ctx.Options.NetworkLock,
        });
    }

    /// <summary>What this dump's plugins see: options, and the threads crisp holds.</summary>
    private static Plugins.PluginRun PluginRun(DumpContext ctx) => new()
    {
        Stage = Plugins.PluginStage.Dump,
        Log = ctx.Log,
        ImagesDir = ctx.Images.Path,
        Timeout = ctx.Options.Timeout,
        LeaveRunning = ctx.Options.LeaveRunning,
        LibDir = ctx.Options.LibDir,
        Tracer = ctx.Tracer,
        FindThread = (pid, tid) => ctx.Tasks.FirstOrDefault(t => t.Pid == pid)?.Threads.FirstOrDefault(t => t.Tid == tid)?.Thread,
    };

    /// <summary>Resident memory from which a killed task's memory is freed by crisp too (<see cref="KillAll"/>): below it
    /// the exit is quick and the extra syscalls would only add.</summary>
    private const long ReleaseFromBytes = 64L << 20;

    /// <summary>SIGKILL every task, and consume their exits on the tracer thread so their parents can reap them.</summary>
    private static void KillAll(DumpContext ctx)
    {
        long start = Stopwatch.GetTimestamp();
        foreach (var task in ctx.Tasks)
            Signals.TryKill(task.Pid);
        // A dying task frees its memory in its own exit, and the dump is done only when it is gone: a large one's
        // anonymous memory is freed from here at the same time (process_mrelease), so it goes sooner (1 GiB: 32–52
        // → 23–28 ms on this VM). Best effort: an older kernel or a shared mm leaves it to the exit alone.
        int released = 0;
        foreach (var task in ctx.Tasks.Where(t => t.Stat.Rss * Mman.PageSize >= ReleaseFromBytes))
        {
            try
            {
                using var pidfd = PidFd.Open(task.Pid);
                long r = pidfd.TryReleaseMemory();
                if (r == 0)
                    released++;
                else
                    ctx.Log.Debug($"process_mrelease({task.Pid}): {Errnos.Describe((int)-r)}: its exit frees it");
            }
            catch (SyscallException) { }   // gone already, or no pidfds: its exit frees it
        }
        // Non-leader threads first: a traced zombie leader is not reported while its group still
        // has threads (delay_group_leader), so waiting for it first would block for ever. Children before
        // parents: the init of a pid namespace does not finish dying until every other task of it is reaped.
        var threads = ctx.Tasks.AsEnumerable().Reverse().SelectMany(t => t.Threads).OrderBy(t => t.Tid == t.Thread.Pid ? 1 : 0).ToList();
        var stuck = ctx.Tracer.ReapWithin(threads.Select(t => t.Tid), ctx.Options.Timeout);
        foreach (var thread in threads)
            thread.Thread.IsDetached = true;
        ctx.Log.Debug($"killed {ctx.Tasks.Count} task(s) ({released} large one(s) freed from here too): gone after {Stopwatch.GetElapsedTime(start).TotalMilliseconds:F1} ms");
        if (stuck.Count > 0)
            ctx.Log.Error($"killed but not dead after {ctx.Options.Timeout.TotalSeconds:F0} s: {string.Join(", ", stuck.Select(Linux.Proc.ProcTasks.Describe))} (crisp is {Environment.ProcessId}); the images are complete");
    }
}

/// <summary>Timings of one dump (CRIU's stats-dump has the same figures).</summary>
public sealed class DumpStats
{
    public TimeSpan FrozenAt { get; set; }
    public TimeSpan ImagesWrittenAt { get; set; }
    public TimeSpan Total { get; set; }
    public int Tasks { get; set; }
    /// <summary>Times and page counts for stats-dump.</summary>
    public Stats.DumpCounters Counters { get; set; } = new();
}
