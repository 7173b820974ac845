using System.Diagnostics;

namespace Crisp.Check;

/// <summary>Runs probes and reports them: one line per feature, then a verdict.</summary>
public static class FeatureCheck
{
    public sealed record Outcome(IFeatureProbe Probe, ProbeResult Result, TimeSpan Elapsed);

    /// <summary>Runs one probe; any failure inside it becomes "missing" with the error's message.</summary>
    public static Outcome Run(IFeatureProbe probe)
    {
        var sw = Stopwatch.StartNew();
        ProbeResult result;
        try
        {
            result = probe.Probe();
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            result = ProbeResult.Missing(e.Message.ReplaceLineEndings(" "));
        }
        return new Outcome(probe, result, sw.Elapsed);
    }

    /// <summary>Runs every probe, writes the report and returns the exit code: 0 when every required
    /// feature is there, 1 otherwise.</summary>
    public static int RunAll(IEnumerable<IFeatureProbe> probes, TextWriter output)
    {
        var outcomes = new List<Outcome>();
        foreach (var probe in probes)
        {
            var outcome = Run(probe);
            outcomes.Add(outcome);
            output.WriteLine(FormatLine(outcome));
        }
        var missing = outcomes.Where(o => o.Probe.Required && !o.Result.Ok).ToList();
        if (missing.Count == 0)
        {
            output.WriteLine("Looks good.");
            return 0;
        }
        output.WriteLine("Missing required features:");
        foreach (var o in missing)
            output.WriteLine($"  {Label(o.Probe)}: {o.Result.Detail}");
        return 1;
    }

    /// <summary>"ok       name [criu_name]                     detail".</summary>
    public static string FormatLine(Outcome o)
        => $"{(o.Result.Ok ? "ok" : "missing"),-8} {Label(o.Probe),-46} {o.Result.Detail}";

    public static string Label(IFeatureProbe p)
        => p.Name + (p.CriuFeature is { } c && c != p.Name ? $" [{c}]" : "") + (p.Required ? "" : " (optional)");
}
