using System.Diagnostics;
using Crisp.Compel;
using Crisp.Images;
using Crisp.Images.Proto;
using Crisp.Resources.Memory;

namespace Crisp.Dump;

/// <summary>`crisp pre-dump`: the tree's memory copied while it runs on, run as <see cref="DumpPipeline.PreDump"/>:
/// the dump's seize, the collect phase with the memory's pre-dump participant (<see cref="MemoryPreDump"/>: VMAs,
/// write tracking armed, the pages to store chosen), the tree let go (<see cref="TreeRelease.LetGo"/>), then the
/// finish phase while it runs (the pages copied). Writes what CRIU's pre-dump writes: inventory.img (with
/// pre_dump_mode), pagemap-PID.img and pages-N.img per task, plus crisp-mem-track. Shared anonymous memory and
/// everything else is left to the final dump.</summary>
public sealed class PreDumper(DumpOptions options, Log log)
{
    /// <summary>CRIU's PRE_DUMP_READ: pages read with process_vm_readv after the tree runs again.</summary>
    private const uint PreDumpModeRead = 2;

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
        var pipeline = DumpPipeline.PreDump;
        ctx.Memory.Chain.Load(ctx);   // a bad --prev-images-dir fails before the tree is touched
        options.Progress?.Begin("seizing");
        try
        {
            DumpPipeline.Seize(ctx);
            stats.FrozenAt = clock.Elapsed;
            counters.Freezing = clock.Elapsed;
            pipeline.CollectAll(ctx);
        }
        catch
        {
            pipeline.Release(ctx, killed: false);
            TreeRelease.LetGo(ctx);
            throw;
        }
        TreeRelease.LetGo(ctx);
        counters.Frozen = clock.Elapsed - stats.FrozenAt;
        log.Info($"pre-dump: tree let go after {counters.Frozen.TotalMilliseconds:F1} ms frozen; copying its memory");

        options.Progress?.Begin("copying memory");
        pipeline.FinishAll(ctx);
        pageServer?.Finish();
        images.Write(ImageFile.Inventory, new inventory_entry
        {
            ImgVersion = 2,
            FdinfoPerId = true,
            NsPerId = true,
            Lsmtype = lsmtype.NoLsm,
            DumpUptime = (ulong)Environment.TickCount64 * 1000,
            PreDumpMode = PreDumpModeRead,
        });
        ctx.Memory.Chain.Finish(ctx);
        ImageManifest.Write(images);
        if (options.AutoDedup && ctx.Memory.Chain.Parent is not null)
            Resources.Memory.AutoDedup.Run(images, log);
        stats.ImagesWrittenAt = clock.Elapsed;
        stats.Total = clock.Elapsed;
        stats.Tasks = ctx.Tasks.Count;
        log.Info($"pre-dump done: {stats.Tasks} task(s), {counters.PagesWritten} pages stored, {counters.PagesSkippedParent} left in the parent, in {stats.Total.TotalMilliseconds:F1} ms");
        return stats;
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
            DumpPipeline.Seize(ctx);
            foreach (var task in ctx.Tasks)
            {
                if (tracked.TryGetValue(task.Pid, out var t) && WriteTracker.StillHeld(task, t))
                    WriteTracker.Stop(task, t);
            }
        }
        finally
        {
            TreeRelease.LetGo(ctx);
        }
    }
}
