using Crisp.Check;

namespace Crisp.Cli.Commands;

/// <summary>`crisp check`: probes the kernel for every feature crisp relies on (`--all` is the same
/// here: every probe runs). `--feature NAME` checks one by CRIU's name (or crisp's), as `criu check
/// --feature NAME`: "NAME is supported" and exit 0, or the reason and exit 1; `--feature list` prints
/// the names. Every name of CRIU's list is answered by a probe. Started as `criu`, plain `check` prints only
/// CRIU's verdict ("Looks good.").</summary>
public static class CheckCommand
{
    public static int Run(CommandContext ctx)
    {
        string? name = ctx.Args.Get("feature");
        if (name == null && ctx.AsCriu)
        {
            // As `criu check`: the verdict alone on stdout, what is missing on stderr.
            var report = new StringWriter();
            int code = FeatureCheck.RunAll(KernelFeatures.All, report);
            if (code == 0)
                ctx.Out.WriteLine("Looks good.");
            else
                Console.Error.Write(string.Join('\n', report.ToString().Split('\n').SkipWhile(l => !l.StartsWith("Missing required features:"))));
            return code;
        }
        if (name == null)
            return FeatureCheck.RunAll(KernelFeatures.All, ctx.Out);
        if (name == "list")
        {
            ctx.Out.WriteLine(string.Join(' ', KernelFeatures.Names));
            return 0;
        }

        var probe = KernelFeatures.Find(name)
            ?? throw new CrispException($"Unknown feature {name} (see: crisp check --feature list)");
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
