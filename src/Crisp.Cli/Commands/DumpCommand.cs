using Crisp.Cli.CommandLine;
using Crisp.Dump;

namespace Crisp.Cli.Commands;

/// <summary>`crisp dump -t PID -D DIR [-R]`.</summary>
public static class DumpCommand
{
    public static int Run(CommandContext ctx)
    {
        string tree = ctx.Args.Get("tree") ?? throw new UsageException("dump needs the root of the tree: -t PID");
        if (!int.TryParse(tree, out int pid) || pid <= 0)
            throw new UsageException($"bad pid '{tree}'");
        var options = new DumpOptions
        {
            RootPid = pid,
            ImagesDir = ctx.RequireImagesDir(),
            LeaveRunning = ctx.Args.Has("leave-running"),
            Timeout = TimeSpan.FromSeconds(ctx.Args.GetInt("timeout", 10)),
            FreezeCgroup = ctx.Args.Get("freeze-cgroup"),
            FileLocks = ctx.Args.Has("file-locks"),
            GhostLimit = ctx.Args.Get("ghost-limit") is { } g ? Sizes.Parse(g, "--ghost-limit") : 1 << 20,
        };
        var stats = new Dumper(options, ctx.Log, FaultInjection.FromEnvironment()).Run();
        ctx.Log.Info($"Dumping finished successfully ({stats.Total.TotalMilliseconds:F0} ms)");
        return 0;
    }
}
