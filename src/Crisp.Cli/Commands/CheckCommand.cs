namespace Crisp.Cli.Commands;

/// <summary>`crisp check`: probes the kernel for every feature crisp relies on.</summary>
public static class CheckCommand
{
    public static int Run(CommandContext ctx) => throw new CrispException("check: not wired yet");
}
