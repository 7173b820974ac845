using Crisp.Check;

namespace Crisp.Cli.Commands;

/// <summary>`crisp check`: probes the kernel for every feature crisp relies on.
/// `--feature NAME` checks one (CRIU's names), `--all` runs every probe (the default here).</summary>
public static class CheckCommand
{
    public static int Run(CommandContext ctx)
    {
        string? name = ctx.Args.Get("feature");
        if (name == null)
            return FeatureCheck.RunAll(KernelFeatures.All, ctx.Out);

        var probe = KernelFeatures.Find(name)
            ?? throw new CrispException($"unknown feature '{name}' (known: {string.Join(", ", KernelFeatures.Names)})");
        var outcome = FeatureCheck.Run(probe);
        if (outcome.Result.Ok)
        {
            ctx.Out.WriteLine($"{name} is supported ({outcome.Result.Detail})");
            return 0;
        }
        ctx.Out.WriteLine($"{name} is not supported: {outcome.Result.Detail}");
        return 1;
    }
}
