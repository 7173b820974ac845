using Crisp.Cli.CommandLine;

namespace Crisp.Cli.Commands;

/// <summary>`crisp show FILE` prints one image as crit does; `crisp show DIR` summarises a checkpoint.</summary>
public static class ShowCommand
{
    public static int Run(CommandContext ctx)
    {
        if (ctx.Operands.Count != 1)
            throw new UsageException("show needs exactly one image file or directory");
        throw new CrispException("show: not wired yet");
    }
}
