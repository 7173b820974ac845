using System.Diagnostics;

namespace Crisp.Tests.Support;

/// <summary>Runs the shipped crisp — the NativeAOT binary the test build publishes into native/ next to the tests
/// (Crisp.Tests.csproj) — as a separate process, the way a user would.</summary>
public static class CrispCli
{
    public sealed record Result(int ExitCode, string Stdout, string Stderr);

    /// <summary>The native crisp executable.</summary>
    public static string Exe { get; } = Path.Combine(AppContext.BaseDirectory, "native", "crisp");

    public static Result Run(params string[] args) => Run(TimeSpan.FromSeconds(60), args);

    public static Result Run(TimeSpan timeout, params string[] args) => Run(timeout, null, args);

    /// <summary>The CLI with extra environment (e.g. CRISP_FAULT).</summary>
    public static Result Run(TimeSpan timeout, IDictionary<string, string>? env, params string[] args) =>
        RunProcess(Exe, timeout, env, args);

    /// <summary>Runs <paramref name="exe"/> to its end with its output captured; one still running after
    /// <paramref name="timeout"/> is killed (with its children) and the call throws.</summary>
    public static Result RunProcess(string exe, TimeSpan timeout, IDictionary<string, string>? env, params string[] args) =>
        RunProcess(exe, timeout, env, null, args);

    /// <summary>As above; <paramref name="onHang"/> says, before the kill, what the hung process (its pid given)
    /// and those it waits on were doing, for the exception's message.</summary>
    public static Result RunProcess(string exe, TimeSpan timeout, IDictionary<string, string>? env, Func<int, string>? onHang, params string[] args)
    {
        var psi = new ProcessStartInfo(exe) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args)
            psi.ArgumentList.Add(a);
        if (env is not null)
            foreach (var (k, v) in env)
                psi.Environment[k] = v;
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeout))
        {
            string report = "";
            try { report = "\n" + (onHang ?? (pid => HangReport.Describe(pid)))(p.Id); }
            catch (Exception e) { report = $"\n(no hang report: {e.Message})"; }
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"{exe} {string.Join(' ', args)} did not finish in {timeout}{report}");
        }
        p.WaitForExit();
        return new Result(p.ExitCode, stdout.Result, stderr.Result);
    }
}
