using Crisp.Cli.CommandLine;
using Crisp.Dump;
using Crisp.Stats;

namespace Crisp.Cli.Commands;

/// <summary>`crisp dump -t PID -D DIR [-R|-s]`: writes stats-dump to the work dir when it succeeds
/// (--display-stats prints it) and signals --status-fd once the dump is complete.</summary>
public static class DumpCommand
{
    public static int Run(CommandContext ctx) => Run(ctx, pre: false);

    /// <summary>`crisp pre-dump -t PID -D DIR [--prev-images-dir P]`: the tree's memory, copied while it runs on.</summary>
    public static int RunPreDump(CommandContext ctx) => Run(ctx, pre: true);

    private static int Run(CommandContext ctx, bool pre)
    {
        string tree = ctx.Args.Get("tree") ?? throw new UsageException("dump needs the root of the tree: -t PID");
        if (!int.TryParse(tree, out int pid) || pid <= 0)
            throw new UsageException($"bad pid '{tree}'");
        int timeout = ctx.Args.GetInt("timeout", 10);
        if (timeout <= 0)
            throw new UsageException($"bad --timeout {timeout}: seconds, more than 0");
        if (ctx.Args.Has("leave-running") && ctx.Args.Has("leave-stopped"))
            throw new UsageException("--leave-running and --leave-stopped contradict each other");
        foreach (var external in ctx.Args.GetAll("external"))
            if (external?.StartsWith("net[", StringComparison.Ordinal) != true && external?.StartsWith("mnt[", StringComparison.Ordinal) != true)
                throw new UsageException($"--external {external}: crisp takes only mnt[PATH]:KEY and net[INODE]:KEY yet");
        var status = ctx.StatusFd();
        string imagesDir = ctx.RequireImagesDir();
        using var scripts = ctx.Scripts(imagesDir);
        var meter = new ProgressMeter();
        var pageServer = PageServerCommand.ForDump(ctx);
        using var tls = pageServer is null && !ctx.Args.Has("lazy-pages") ? null : PageServerCommand.Tls(ctx);
        var options = new DumpOptions
        {
            Progress = meter,
            RootPid = pid,
            ImagesDir = imagesDir,
            ImagesDirHandle = ctx.ImagesDirHandle,
            ImagesDirCreated = ctx.CreatedImagesDir,
            ExternalMounts = ctx.ExternalMounts(),
            AutoExternalMounts = ctx.AutoExternalMounts(),
            LeaveRunning = ctx.Args.Has("leave-running"),
            LeaveStopped = ctx.Args.Has("leave-stopped"),
            ShellJob = ctx.Args.Has("shell-job"),
            OrphanPtsMaster = ctx.Args.Has("orphan-pts-master"),
            Timeout = TimeSpan.FromSeconds(timeout),
            FreezeCgroup = ctx.Args.Get("freeze-cgroup"),
            Scripts = scripts,
            TcpEstablished = ctx.Args.Has("tcp-established"),
            SkipInFlight = ctx.Args.Has("skip-in-flight"),
            NetworkLock = ctx.NetworkLock() ?? Crisp.Resources.Files.Sockets.Inet.NetworkLockMethod.Nftables,
            ExtUnixSk = ctx.ExtUnixSk(),
            FileLocks = ctx.Args.Has("file-locks"),
            LibDir = ctx.InWorkDir(ctx.Args.Get("libdir")),
            ImagesMode = ctx.ImagesMode(),
            SignKey = ctx.InWorkDir(ctx.Args.Get("sign-key")),
            EncryptKey = ctx.InWorkDir(ctx.Args.Get("encrypt-key")),
            GhostLimit = ctx.Args.Get("ghost-limit") is { } g ? Sizes.Parse(g, "--ghost-limit") : 1 << 20,
            External = [.. ctx.Args.GetAll("external").Select(v => v ?? "")],
            EmptyNs = ctx.EmptyNs(),
            CgroupMode = ctx.CgroupMode(),
            CgroupProps = ctx.CgroupProps(),
            CgroupDumpControllers = [.. ctx.Args.GetAll("cgroup-dump-controller").Select(v => v ?? "")],
            PrevImagesDir = ctx.Args.Get("prev-images-dir"),
            TrackMem = pre || ctx.Args.Has("track-mem"),
            AutoDedup = ctx.Args.Has("auto-dedup"),
            PageServer = pageServer,
            Compress = ctx.Args.Has("compress"),
            Tls = tls,
            LazyPages = LazyPagesCommand.ForDump(ctx, pre),
            LazyServing = endpoint => ctx.Out.WriteLine($"lazy pages: serving on {endpoint}"),
        };
        if (pre && (options.LeaveStopped || options.SignKey is not null))
            throw new UsageException("pre-dump leaves the tree running and writes no signed manifest: --leave-stopped and --sign-key are for dump");
        DumpStats stats;
        using (ProgressLine.Start(pre ? "pre-dump" : "dump", meter, allowed: !options.ShellJob && ctx.ShowProgress))
            stats = pre ? new PreDumper(options with { LeaveRunning = true }, ctx.Log).Run()
                : new Dumper(options, ctx.Log, FaultInjection.FromEnvironment()).Run();
        // CRIU writes stats-dump into the work dir.
        var entry = StatsImage.ForDump(stats.Counters);
        StatsImage.Write(ctx.InWorkDir(StatsImage.DumpFile)!, entry, options.ImagesMode.File);
        if (ctx.Args.Has("display-stats"))
            ctx.Out.Write(StatsImage.Display(entry));
        ctx.Log.Info($"{(pre ? "Pre-dumping" : "Dumping")} finished successfully ({stats.Total.TotalMilliseconds:F0} ms)");
        ctx.Log.Debug($"crisp allocated {GC.GetTotalAllocatedBytes() >> 10} KiB, {GC.CollectionCount(0)} collection(s)");
        status?.Ready();
        return 0;
    }
}
