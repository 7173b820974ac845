using Crisp.Cli.CommandLine;
using Crisp.Restore;
using Crisp.Stats;

namespace Crisp.Cli.Commands;

/// <summary>`crisp restore -D DIR [-d [-S]] [--pidfile F]`: without -d, waits for the restored root and
/// exits with its status. Writes stats-restore to the work dir, signals --status-fd once the tree runs.</summary>
public static class RestoreCommand
{
    public static int Run(CommandContext ctx)
    {
        bool detached = ctx.Args.Has("restore-detached") || ctx.Args.Has("daemon");
        bool sibling = ctx.Args.Has("restore-sibling");
        if (sibling && !detached)
            throw new UsageException("--restore-sibling only makes sense with --restore-detached");
        var status = ctx.StatusFd();
        string imagesDir = ctx.RequireImagesDir();
        using var scripts = ctx.Scripts(imagesDir);
        var meter = new ProgressMeter();
        var options = new RestoreOptions
        {
            Progress = meter,
            ImagesDir = imagesDir,
            ImagesDirHandle = ctx.ImagesDirHandle,
            Root = ctx.Args.Get("root") is { } root ? Path.GetFullPath(root, ctx.StartDirectory) : null,
            ExternalMounts = ctx.ExternalMounts(),
            AutoExternalMounts = ctx.AutoExternalMounts(),
            Detached = detached,
            Sibling = sibling,
            PidFile = ctx.InWorkDir(ctx.Args.Get("pidfile")),
            ShellJob = ctx.Args.Has("shell-job"),
            OrphanPtsMaster = ctx.Args.Has("orphan-pts-master"),
            Scripts = scripts,
            TcpEstablished = ctx.Args.Has("tcp-established"),
            NetworkLock = ctx.NetworkLock(),
            ExtUnixSk = ctx.ExtUnixSk(),
            FileLocks = ctx.Args.Has("file-locks"),
            LibDir = ctx.InWorkDir(ctx.Args.Get("libdir")),
            SkipImageVerify = ctx.Args.Has("skip-image-verify"),
            InheritFds = ctx.InheritFds(),
            InsecureImages = ctx.Args.Has("insecure-images"),
            LazyPagesSocket = ctx.Args.Has("lazy-pages") ? ctx.InWorkDir(Crisp.Resources.Memory.Lazy.LazyPagesSocket.Name) : null,
            VerifyKey = ctx.InWorkDir(ctx.Args.Get("verify-key")),
            EncryptKey = ctx.InWorkDir(ctx.Args.Get("encrypt-key")),
            EmptyNs = ctx.EmptyNs(),
            WeakSysctls = ctx.Args.Has("weak-sysctls"),
            JoinNs = ctx.JoinNs(),
            VethPairs = ctx.VethPairs(),
            CgroupMode = ctx.CgroupMode(),
            CgroupRoots = ctx.CgroupRoots(),
            CgroupYard = ctx.Args.Get("cgroup-yard") is { } yard ? Path.GetFullPath(yard) : null,
        };
        if (ctx.Args.Has("check-only"))
            return CheckOnly(ctx, options);
        RestoredTree tree;
        // Gone before the tree is waited for: from then on the terminal is the restored tree's.
        using (ProgressLine.Start("restore", meter, allowed: !options.ShellJob && ctx.ShowProgress))
            tree = new Restorer(options, ctx.Log, FaultInjection.FromEnvironment()).Run();
        var entry = StatsImage.ForRestore(tree.Counters);
        StatsImage.Write(ctx.InWorkDir(StatsImage.RestoreFile)!, entry, ctx.ImagesMode().File);
        if (ctx.Args.Has("display-stats"))
            ctx.Out.Write(StatsImage.Display(entry));
        ctx.Log.Info($"Restore finished successfully, root {tree.RootPid}");
        ctx.Log.Debug($"crisp allocated {GC.GetTotalAllocatedBytes() >> 10} KiB, {GC.CollectionCount(0)} collection(s)");
        status?.Ready();
        ctx.OnRestored?.Invoke(tree);
        if (options.Detached)
            return 0;
        // As CRIU: a foreground restore waits for the restored root, then exits 0; its status goes to the log.
        int rootStatus = tree.WaitForExit();
        ctx.Log.Info($"restored root {tree.RootPid} exited with status {rootStatus}");
        return 0;
    }

    /// <summary>--check-only: every check listed on stdout; any failure is the one error line (exit 1). Creates
    /// no task and writes no file (no stats-restore, no pidfile, no action script runs).</summary>
    private static int CheckOnly(CommandContext ctx, RestoreOptions options)
    {
        var items = RestoreCheck.Run(options, ctx.Log);
        foreach (var item in items)
            ctx.Out.WriteLine($"{(item.Ok ? "ok  " : "FAIL")} {item.What}: {item.Detail}");
        ctx.Out.Flush();
        var failed = items.Where(i => !i.Ok).ToList();
        if (failed.Count > 0)
            throw new CrispException($"cannot restore {options.ImagesDir} here: {failed[0].What}: {failed[0].Detail}" +
                (failed.Count > 1 ? $" (and {failed.Count - 1} more problem(s), listed above)" : ""));
        ctx.Out.WriteLine($"{options.ImagesDir} can be restored here");
        return 0;
    }
}
