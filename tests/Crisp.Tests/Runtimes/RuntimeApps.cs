using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using Crisp.Tests.Support;

namespace Crisp.Tests.Runtimes;

/// <summary>The programs of tests/workloads/runtimes, ready to run: the Python script as it is, the Java
/// class compiled with javac and the .NET app built with the machine's dotnet — both cached by source
/// hash under /tmp/crisp-workloads, like <see cref="Support.Workloads.Build"/>.</summary>
public static class RuntimeApps
{
    private static readonly object Gate = new();
    private static string Dir => Path.Combine(Support.Workloads.SourceDir, "runtimes");

    /// <summary>(executable, argv before OUT DIR) for each runtime.</summary>
    public static (string Exe, string[] Argv) Python() => ("/usr/bin/python3", ["python3", Path.Combine(Dir, "threads.py")]);

    public static (string Exe, string[] Argv) Java()
    {
        string classes = Cached("java", [Path.Combine(Dir, "Threads.java")], dir =>
            Run("javac", $"-d {dir} {Path.Combine(Dir, "Threads.java")}", Dir));
        // A small heap keeps the dump small; the threads are the JVM's usual ones.
        return ("/usr/bin/java", ["java", "-Xmx64m", "-cp", classes, "Threads"]);
    }

    public static (string Exe, string[] Argv) DotNet()
    {
        string src = Path.Combine(Dir, "dotnet");
        string out_ = Cached("dotnet", [Path.Combine(src, "Program.cs"), Path.Combine(src, "app.csproj.in")], dir =>
        {
            // Built outside the repository, so its Directory.Build.props does not apply.
            string proj = Path.Combine(dir, "proj");
            Directory.CreateDirectory(proj);
            File.Copy(Path.Combine(src, "Program.cs"), Path.Combine(proj, "Program.cs"));
            File.Copy(Path.Combine(src, "app.csproj.in"), Path.Combine(proj, "app.csproj"));
            Run("dotnet", $"build -c Release -o {Path.Combine(dir, "bin")} -nologo -v q", proj);
        });
        string exe = Path.Combine(out_, "bin", "crisp-rt-app");
        return (exe, [exe]);
    }

    /// <summary>A directory made once per content hash of <paramref name="sources"/> by <paramref name="make"/>.</summary>
    private static string Cached(string name, string[] sources, Action<string> make)
    {
        var text = new StringBuilder();
        foreach (var s in sources)
            text.Append(File.ReadAllText(s)).Append('\0');
        string hash = Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(text.ToString())))[..16];
        string dir = Path.Combine(Path.GetTempPath(), "crisp-workloads", $"rt-{name}-{hash}");
        lock (Gate)
        {
            if (Directory.Exists(dir))
                return dir;
            string tmp = $"{dir}.tmp{Environment.ProcessId}";
            if (Directory.Exists(tmp))
                Directory.Delete(tmp, recursive: true);
            Directory.CreateDirectory(tmp);
            make(tmp);
            Directory.Move(tmp, dir);
            return dir;
        }
    }

    private static void Run(string tool, string args, string cwd)
    {
        var psi = new ProcessStartInfo(tool, args)
        {
            WorkingDirectory = cwd,
            RedirectStandardError = true,
            RedirectStandardOutput = true,
        };
        // The test host runs under MSBuild/dotnet test: their variables would steer a nested build.
        foreach (var key in psi.Environment.Keys.Where(k => k.StartsWith("MSBuild", StringComparison.OrdinalIgnoreCase)
            || k.StartsWith("VSTEST", StringComparison.OrdinalIgnoreCase) || k == "DOTNET_HOST_PATH").ToList())
            psi.Environment.Remove(key);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        string stderr = p.StandardError.ReadToEnd();
        if (!p.WaitForExit(180_000))
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"{tool} {args} took over 3 minutes");
        }
        if (p.ExitCode != 0)
            throw new InvalidOperationException($"{tool} {args} failed ({p.ExitCode}):\n{stdout.Result}\n{stderr}");
    }
}
