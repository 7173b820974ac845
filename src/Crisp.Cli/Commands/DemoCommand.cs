namespace Crisp.Cli.Commands;

/// <summary>`crisp demo`: the main job, shown end to end.</summary>
public static class DemoCommand
{
    public static int Run(CommandContext ctx) => CheckCommand.Run(ctx);
}
