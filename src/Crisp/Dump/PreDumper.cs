using System.Diagnostics;
using Crisp.Compel;
using Crisp.Images;
using Crisp.Images.Proto;
using Crisp.Resources.Memory;

namespace Crisp.Dump;

/// <summary>`crisp pre-dump`: the tree's memory copied while it runs on. The tree is seized only to list each
/// task's VMAs, arm write tracking (<see cref="WriteTracker"/>) and decide which pages to store (all, or with
/// --prev-images-dir those written since the parent and those it lacks); then it is let go, and the pages are
/// read with process_vm_readv while it runs — a page written after the tracking was armed is stored again by
/// the next dump, so what each page held when it was copied does not matter. Writes what CRIU's pre-dump writes:
/// inventory.img (with pre_dump_mode), pagemap-PID.img and pages-N.img per task, plus crisp-mem-track.
/// Shared anonymous memory and everything else is left to the final dump.</summary>
public sealed class PreDumper(DumpOptions options, Log log)
{
    /// <summary>CRIU's PRE_DUMP_READ: pages read with process_vm_readv after the tree runs again.</summary>
    private const uint PreDumpModeRead = 2;

    private sealed record Planned(DumpTask Task, int VirtualPid, List<PlannedRun> Plan);

    public DumpStats Run()
    {
        var output = DumpOutput.Begin(options.ImagesDir, options.ImagesDirCreated, options.ImagesMode.Directory);
        try
        {
            var stats = PreDump();
            output.Commit();
            return stats;
        }
        catch (Exception e)
        {
            var reported = output.Discard(e, [options.RootPid]);
            if (ReferenceEquals(reported, e))
                throw;
            throw reported;
        }
    }

    private DumpStats PreDump()
    {
        var stats = new DumpStats();
        var clock = Stopwatch.StartNew();
        var key = options.EncryptKey is { } encryptKey ? Security.Encryption.ImageKey.Load(encryptKey) : null;
        using var images = ImageDirectory.Create(options.ImagesDir, options.ImagesMode, key, options.ImagesDirHandle);
        images.Progress = options.Progress;
        using var pageServer = Dumper.ConnectPageServer(options);
        images.PageServer = pageServer;
        ImageManifest.Invalidate(images);
        using var tracer = new Tracer();
        using var ctx = new DumpContext(options, log, images, tracer, FaultInjection.None);
        var counters = stats.Counters = ctx.Counters;
        var chain = ctx.Memory.Chain;
        chain.Load(ctx);
        var planned = new List<Planned>();
        var created = new List<TrackedTask>();
        options.Progress?.Begin("seizing");
        try
        {
            TreeSeizer.SeizeTree(ctx);
            stats.FrozenAt = clock.Elapsed;
            counters.Freezing = clock.Elapsed;
            foreach (var task in ctx.Tasks)
                planned.Add(Plan(ctx, chain, task, created));
        }
        catch
        {
            // Tracking this pre-dump started goes again; what a previous one armed stays for a retry.
            foreach (var t in created)
            {
                try { ctx.Tasks.First(x => x.Pid == t.Pid).Remote.Syscall(Linux.Sysno.close, t.Fd); }
                catch (Exception e) { log.Error($"closing the tracking userfaultfd of {t.Pid}: {e.Message}"); }
            }
            Release(ctx);
            throw;
        }
        Release(ctx);
        counters.Frozen = clock.Elapsed - stats.FrozenAt;
        log.Info($"pre-dump: tree let go after {counters.Frozen.TotalMilliseconds:F1} ms frozen; copying its memory");

        options.Progress?.Begin("copying memory");
        long memStart = Stopwatch.GetTimestamp();
        foreach (var p in planned)
        {
            using var writer = images.CreatePagemap(p.VirtualPid, ctx.NewId());
            try
            {
                new PrivatePagesDump(p.Task.Pid, writer, ctx.Memory.Batches).Dump(p.Plan, taskRuns: true);
            }
            catch (Exception e) when (Gone(p.Task.Pid, e))
            {
                // The tree runs on while its memory is copied: a task that exited meanwhile (a shell's short-lived
                // child) is in no later dump; its tracking went with it, so a task that reuses its pid is stored whole.
                log.Info($"pre-dump: task {p.Task.Pid} exited while its memory was copied; left out");
                continue;
            }
            counters.AddPrivate(p.Plan.Sum(r => (long)r.Length) / PagemapWriter.PageSize, writer);
            log.Debug($"pre-dump of {p.Task.Pid}: {writer.PagesWritten} pages stored, {writer.PagesInParent} in the parent");
        }
        pageServer?.Finish();
        counters.MemDump = Stopwatch.GetElapsedTime(memStart);
        images.Write(ImageFile.Inventory, new inventory_entry
        {
            ImgVersion = 2,
            FdinfoPerId = true,
            NsPerId = true,
            Lsmtype = lsmtype.NoLsm,
            DumpUptime = (ulong)Environment.TickCount64 * 1000,
            PreDumpMode = PreDumpModeRead,
        });
        chain.Finish(ctx);
        ImageManifest.Write(images);
        stats.ImagesWrittenAt = clock.Elapsed;
        stats.Total = clock.Elapsed;
        stats.Tasks = ctx.Tasks.Count;
        log.Info($"pre-dump done: {stats.Tasks} task(s), {counters.PagesWritten} pages stored, {counters.PagesSkippedParent} left in the parent, in {stats.Total.TotalMilliseconds:F1} ms");
        return stats;
    }

    /// <summary>While the task is seized: its VMAs, tracking armed, the pages to store chosen, then every tracked
    /// page write-protected (writes from here on go to the next dump).</summary>
    private static Planned Plan(DumpContext ctx, MemoryChain chain, DumpTask task, List<TrackedTask> created)
    {
        // The scratch page first, so that the VMA list leaves it out.
        task.Remote.PutOnScratch(new byte[8]);
        var vmas = VmaCollector.Collect(task.Pid, task.Remote.OwnedScratch, _ => 0, _ => 0);
        chain.Previous.TryGetValue(task.Pid, out var previous);
        bool held = WriteTracker.StillHeld(task, previous);
        var armed = WriteTracker.Arm(task, vmas, held ? previous : null, ctx.Log);
        if (!held)
            created.Add(armed);
        chain.Armed.Add(armed);
        var parent = chain.Parent is null ? null : ParentCoverage.Open(chain.Parent, task.VirtualPid);
        using var pagemap = Linux.Proc.Pagemap.Open(task.Pid);
        // Only what is tracked from now on: the rest is stored whole by the final dump anyway.
        var tracked = vmas.Where(v => v.HasPrivatePages && armed.Covers(v.Start, v.End));
        var plan = PagePlan.Make(pagemap, tracked, v => WriteTracker.TrackedSince(v, previous, held), parent);
        WriteTracker.Reset(pagemap, armed);
        return new Planned(task, task.VirtualPid, plan);
    }

    private static bool Gone(int pid, Exception e) =>
        (e is Linux.SyscallException { Errno: Linux.Errnos.ESRCH } || e.InnerException is Linux.SyscallException { Errno: Linux.Errnos.ESRCH })
        || !Alive(pid);

    private static bool Alive(int pid)
    {
        try { return Linux.Proc.ProcStat.Read(pid).State is not ('Z' or 'X'); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return false; }
    }

    /// <summary>Ends the tracking that the pre-dump in <see cref="DumpOptions.ImagesDir"/> left in the tree, when no
    /// dump will follow (crisp migrate gave up): the tree is seized for a moment, each task's tracking userfaultfd
    /// that is still crisp's is closed (the kernel drops the registration and the wp bits), and it is let go.</summary>
    public static void EndTracking(DumpOptions options, Log log)
    {
        var tracked = TrackFile.Read(options.ImagesDir);
        if (tracked.Count == 0)
            return;
        using var tracer = new Tracer();
        using var ctx = new DumpContext(options, log, ImageDirectory.Open(options.ImagesDir), tracer, FaultInjection.None);
        try
        {
            TreeSeizer.SeizeTree(ctx);
            foreach (var task in ctx.Tasks)
            {
                if (tracked.TryGetValue(task.Pid, out var t) && WriteTracker.StillHeld(task, t))
                    WriteTracker.Stop(task, t);
            }
        }
        finally
        {
            Release(ctx);
        }
    }

    /// <summary>Registers back, every task detached, the cgroup freezer as it was: the tree runs on.</summary>
    private static void Release(DumpContext ctx)
    {
        foreach (var task in ctx.Tasks)
        {
            try { task.Dispose(); }
            catch (Exception e) { ctx.Log.Error($"restoring registers of {task.Pid}: {e.Message}"); }
        }
        foreach (var task in ctx.Tasks)
        {
            try { task.Process.Detach(); }
            catch (Exception e) { ctx.Log.Error($"detaching {task.Pid}: {e.Message}"); }
        }
        try { ctx.Freezer?.RestoreOriginalState(ctx.Options.Timeout); }
        catch (Exception e) { ctx.Log.Error($"putting cgroup {ctx.Freezer?.Path} back: {e.Message}"); }
    }
}
