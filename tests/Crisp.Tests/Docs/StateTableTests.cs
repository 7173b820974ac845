using Crisp.Dump;

namespace Crisp.Tests.Docs;

/// <summary>docs/state.md lists every piece of task state and what a restore does with it. This keeps it from
/// drifting: every dump stage has a row, every test a row names exists in this assembly, and every status is
/// one of the allowed words (there is no "dropped").</summary>
public class StateTableTests
{
    private static readonly string[] Statuses =
        ["restored", "restored where permitted", "refused", "not detectable", "not restorable", "not applicable yet"];

    [Fact]
    public void EveryStageHasARowAndEveryNamedTestExists()
    {
        var rows = Rows();
        Assert.NotEmpty(rows);
        foreach (var stage in Dumper.Stages)
            Assert.True(rows.Any(r => r.Stage == stage.Name), $"docs/state.md has no row for the dump stage '{stage.Name}'");
        var testTypes = typeof(StateTableTests).Assembly.GetTypes().Select(t => t.Name).ToHashSet();
        foreach (var row in rows)
        {
            Assert.True(Statuses.Contains(row.Status), $"docs/state.md: '{row.State}' has status '{row.Status}'");
            if (row.Test != "—")
                Assert.True(testTypes.Contains(row.Test), $"docs/state.md: '{row.State}' names test {row.Test}, which does not exist");
            else
                Assert.NotEqual("restored", row.Status);   // a restored item must name the test that proves it
        }
    }

    private sealed record Row(string State, string Stage, string Status, string Test);

    private static List<Row> Rows()
    {
        string path = Path.Combine(RepoRoot(), "docs", "state.md");
        return File.ReadLines(path)
            .Where(l => l.StartsWith("| ", StringComparison.Ordinal) && !l.StartsWith("| state ", StringComparison.Ordinal) && !l.StartsWith("| ---", StringComparison.Ordinal))
            .Select(l => l.Trim().Trim('|').Split(" | ").Select(c => c.Trim()).ToArray())
            .Select(c => new Row(c[0], c[1], c[2], c[4]))
            .ToList();
    }

    internal static string RepoRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "crisp.slnx")))
            dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("crisp.slnx not found above the test assembly");
    }
}
