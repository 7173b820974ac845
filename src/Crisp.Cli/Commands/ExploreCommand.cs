using Crisp.Cli.CommandLine;
using Crisp.Images.Show;

namespace Crisp.Cli.Commands;

/// <summary>`crisp x DIR ps|fds|mems|rss`, as `crit x`.</summary>
public static class ExploreCommand
{
    public static int Run(CommandContext ctx)
    {
        if (ctx.Operands.Count != 2 || !CheckpointExplorer.Views.Contains(ctx.Operands[1]))
            throw new UsageException($"x needs a checkpoint directory and one of {string.Join(", ", CheckpointExplorer.Views)}");
        ctx.Out.Write(CheckpointExplorer.Render(ctx.Operands[0], ctx.Operands[1], ctx.ReadKey()));
        ctx.Out.Flush();
        return 0;
    }
}
