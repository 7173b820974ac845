using System.Text.RegularExpressions;
using Crisp.Tests.Docs;

namespace Crisp.Tests.Compel;

/// <summary>Edges the compiler cannot draw inside one assembly, checked on the sources (each test names the
/// files that cross one): ptrace requests are made by Compel alone (the rest of crisp asks a SeizedThread or
/// a RemoteTask, so every request runs on the tracer thread); per-process /proc paths come from Procfs (which
/// owns the procfs root); syscall numbers are written in the Sysno table only.</summary>
public sealed partial class CompelEdgeTests
{
    [Fact]
    public void PtraceIsCalledOnlyInsideCompel()
        => AssertNoneCross("ptrace called outside src/Crisp/Compel", Inside("src", "Crisp", "Compel"), PtraceCall().IsMatch);

    [Fact]
    public void ProcPathsComeFromProcfs()
        => AssertNoneCross("\"/proc/{pid}\" built outside Procfs", f => Path.GetFileName(f) == "Procfs.cs",
            text => text.Contains("/proc/{", StringComparison.Ordinal));

    [Fact]
    public void SyscallNumbersLiveInSysno()
        => AssertNoneCross("syscall numbers defined outside Sysno", Inside("src", "Crisp", "Linux", "Arch"), SyscallNumber().IsMatch);

    private static Func<string, bool> Inside(params string[] folder)
    {
        string prefix = Path.Combine([StateTableTests.RepoRoot(), .. folder]) + Path.DirectorySeparatorChar;
        return f => f.StartsWith(prefix, StringComparison.Ordinal);
    }

    /// <summary>Every C# file under src/ that <paramref name="exempt"/> does not cover and whose text
    /// <paramref name="crosses"/> fails the test, by its path.</summary>
    private static void AssertNoneCross(string what, Func<string, bool> exempt, Func<string, bool> crosses)
    {
        string root = StateTableTests.RepoRoot();
        string sep = Path.DirectorySeparatorChar.ToString();
        var crossing = Directory.EnumerateFiles(Path.Combine(root, "src"), "*.cs", SearchOption.AllDirectories)
            .Where(f => !f.Contains($"{sep}obj{sep}", StringComparison.Ordinal) && !f.Contains($"{sep}bin{sep}", StringComparison.Ordinal))
            .Where(f => !exempt(f) && crosses(File.ReadAllText(f)))
            .Select(f => Path.GetRelativePath(root, f))
            .ToList();
        Assert.True(crossing.Count == 0, $"{what}: {string.Join(", ", crossing)}");
    }

    [GeneratedRegex(@"\bPtrace(Request)?\.[A-Z]")]
    private static partial Regex PtraceCall();

    // A constant named like a syscall number (SysFoo, Sys_foo, NrFoo, __NR_foo) given a value.
    [GeneratedRegex(@"\b(Sys[A-Z]\w*|Sys_[a-z]\w*|Nr[A-Z]\w*|__NR_\w+)\s*=\s*\d+")]
    private static partial Regex SyscallNumber();
}
