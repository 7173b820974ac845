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
        var options = new RestoreOptions
        {
            ImagesDir = imagesDir,
            Detached = detached,
            Sibling = sibling,
            PidFile = ctx.Args.Get("pidfile"),
            ShellJob = ctx.Args.Has("shell-job"),
            Scripts = scripts,
            TcpEstablished = ctx.Args.Has("tcp-established"),
            NetworkLock = ctx.NetworkLock(),
            ExtUnixSk = ctx.ExtUnixSk(),
            FileLocks = ctx.Args.Has("file-locks"),
            LibDir = ctx.Args.Get("libdir"),
            SkipImageVerify = ctx.Args.Has("skip-image-verify"),
            InheritFds = ctx.InheritFds(),
            InsecureImages = ctx.Args.Has("insecure-images"),
            VerifyKey = ctx.Args.Get("verify-key"),
            EncryptKey = ctx.Args.Get("encrypt-key"),
        };
        var tree = new Restorer(options, ctx.Log, FaultInjection.FromEnvironment()).Run();
        var entry = StatsImage.ForRestore(tree.Counters);
        StatsImage.Write(StatsImage.RestoreFile, entry, ctx.ImagesMode().File);
        if (ctx.Args.Has("display-stats"))
            ctx.Out.Write(StatsImage.Display(entry));
        ctx.Log.Info($"Restore finished successfully, root {tree.RootPid}");
        status?.Ready();
        if (options.Detached)
            return 0;
        // As CRIU: a foreground restore waits for the restored root, then exits 0; its status goes to the log.
        int rootStatus = tree.WaitForExit();
        ctx.Log.Info($"restored root {tree.RootPid} exited with status {rootStatus}");
        return 0;
    }
}
