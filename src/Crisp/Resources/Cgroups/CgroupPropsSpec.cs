using System.Text.RegularExpressions;

namespace Crisp.Resources.Cgroups;

/// <summary>--cgroup-props / --cgroup-props-file: which properties are dumped per controller, in CRIU's simplified
/// YAML (criu/cgroup-props.c): per controller a quoted name, a "strategy" of "merge" (added to crisp's default
/// list) or "replace" (instead of it), and a list of "properties". The cgroup v2 hierarchy goes by "unified".
/// <code>
/// "cpu":
///  - "strategy": "replace"
///  - "properties": ["cpu.shares", "cpu.cfs_period_us"]
/// </code></summary>
public sealed partial class CgroupPropsSpec
{
    private readonly Dictionary<string, (bool Replace, List<string> Properties)> _byController = new(StringComparer.Ordinal);

    public static CgroupPropsSpec Empty { get; } = new();

    public bool IsEmpty => _byController.Count == 0;

    /// <summary>The properties of <paramref name="controller"/> given crisp's <paramref name="defaults"/>.</summary>
    public IEnumerable<string> Apply(string controller, IEnumerable<string> defaults) =>
        _byController.TryGetValue(controller, out var e) ? (e.Replace ? e.Properties : defaults.Concat(e.Properties).Distinct()) : defaults;

    /// <summary>Parses the text; a later entry for the same controller merges into or replaces the earlier one, as
    /// CRIU's. Throws one line naming <paramref name="what"/> and the line that is wrong.</summary>
    public static CgroupPropsSpec Parse(string text, string what)
    {
        var spec = new CgroupPropsSpec();
        var lines = text.Replace("\r", "").Split('\n').Select((l, i) => (Text: l.Trim(), No: i + 1)).Where(l => l.Text.Length > 0).ToList();
        for (int i = 0; i < lines.Count; i += 3)
        {
            var name = ControllerLine().Match(lines[i].Text);
            if (!name.Success)
                throw Bad(what, lines[i].No, "expected a quoted controller name and ':'");
            if (i + 2 >= lines.Count)
                throw Bad(what, lines[^1].No, $"controller \"{name.Groups[1].Value}\" needs a \"strategy\" and a \"properties\" line");
            var strategy = StrategyLine().Match(lines[i + 1].Text);
            if (!strategy.Success)
                throw Bad(what, lines[i + 1].No, "expected - \"strategy\": \"merge\" or \"replace\"");
            var props = PropertiesLine().Match(lines[i + 2].Text);
            if (!props.Success)
                throw Bad(what, lines[i + 2].No, "expected - \"properties\": [\"NAME\", …]");
            var list = new List<string>();
            string inner = props.Groups[1].Value.Trim();
            if (inner.Length > 0)
                foreach (var item in inner.Split(','))
                {
                    var q = Quoted().Match(item.Trim());
                    if (!q.Success || q.Groups[1].Value.Contains('/'))
                        throw Bad(what, lines[i + 2].No, $"'{item.Trim()}' is not a quoted property name");
                    list.Add(q.Groups[1].Value);
                }
            string controller = name.Groups[1].Value;
            bool replace = strategy.Groups[1].Value == "replace";
            if (!replace && spec._byController.TryGetValue(controller, out var earlier))
                spec._byController[controller] = (earlier.Replace, [.. earlier.Properties, .. list]);
            else
                spec._byController[controller] = (replace, list);
        }
        return spec;
    }

    private static CrispException Bad(string what, int line, string why) => new($"{what}: line {line}: {why}");

    [GeneratedRegex("^\"([^\"]+)\"\\s*:$")]
    private static partial Regex ControllerLine();
    [GeneratedRegex("^-\\s*\"strategy\"\\s*:\\s*\"(merge|replace)\"$")]
    private static partial Regex StrategyLine();
    [GeneratedRegex("^-\\s*\"properties\"\\s*:\\s*\\[(.*)\\]$")]
    private static partial Regex PropertiesLine();
    [GeneratedRegex("^\"([^\"]+)\"$")]
    private static partial Regex Quoted();
}
