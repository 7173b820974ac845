using Crisp.Restore;

namespace Crisp.Cli.Commands;

/// <summary>`crisp restore -D DIR [-d] [--pidfile F]`: without -d, waits for the restored root and exits
/// with its status, as CRIU does.</summary>
public static class RestoreCommand
{
    public static int Run(CommandContext ctx)
    {
        var options = new RestoreOptions
        {
            ImagesDir = ctx.RequireImagesDir(),
            Detached = ctx.Args.Has("restore-detached"),
            PidFile = ctx.Args.Get("pidfile"),
            LibDir = ctx.Args.Get("libdir"),
        };
        var tree = new Restorer(options, ctx.Log, FaultInjection.FromEnvironment()).Run();
        ctx.Log.Info($"Restore finished successfully, root {tree.RootPid}");
        return options.Detached ? 0 : tree.WaitForExit();
    }
}
