using System.Text.RegularExpressions;
using Crisp.Tests.Docs;

namespace Crisp.Tests.Compel;

/// <summary>Compel's edge is a boundary the compiler cannot draw inside one assembly: ptrace requests are made
/// by Compel alone (the rest of crisp asks a SeizedThread or a RemoteTask), so that every one of them runs on
/// the tracer thread. This reads the sources and names any file that crosses it.</summary>
public sealed partial class CompelEdgeTests
{
    [Fact]
    public void PtraceIsCalledOnlyInsideCompel()
    {
        string root = StateTableTests.RepoRoot();
        string compel = Path.Combine(root, "src", "Crisp", "Compel") + Path.DirectorySeparatorChar;
        var crossing = SourceFiles(root)
            .Where(f => !f.StartsWith(compel, StringComparison.Ordinal) && PtraceCall().IsMatch(File.ReadAllText(f)))
            .Select(f => Path.GetRelativePath(root, f))
            .ToList();
        Assert.True(crossing.Count == 0, $"ptrace called outside src/Crisp/Compel: {string.Join(", ", crossing)}");
    }

    internal static IEnumerable<string> SourceFiles(string root) =>
        Directory.EnumerateFiles(Path.Combine(root, "src"), "*.cs", SearchOption.AllDirectories)
            .Where(f => !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}", StringComparison.Ordinal)
                && !f.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}", StringComparison.Ordinal));

    [GeneratedRegex(@"\bPtrace(Request)?\.[A-Z]")]
    private static partial Regex PtraceCall();
}
