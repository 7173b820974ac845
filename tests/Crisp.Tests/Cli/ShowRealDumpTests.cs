using System.Diagnostics;
using Crisp.Images;
using Crisp.Tests.Images;
using Crisp.Tests.Support;

namespace Crisp.Tests.Cli;

/// <summary>Dumps a real `sleep` once (root) for the tests below.</summary>
public sealed class SleepDumpFixture : IDisposable
{
    private readonly Lazy<(string Dir, int Pid)> _dump = new(Dump);

    public string Dir => _dump.Value.Dir;
    public int Pid => _dump.Value.Pid;

    private static (string, int) Dump()
    {
        string dir = Path.Combine(Path.GetTempPath(), "crisp-show-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        var psi = new ProcessStartInfo("bash", ["-c", "setsid sleep 100 </dev/null >/dev/null 2>&1 & echo $!"]) { RedirectStandardOutput = true };
        using var sh = Process.Start(psi)!;
        int pid = int.Parse(sh.StandardOutput.ReadLine()!.Trim(), System.Globalization.CultureInfo.InvariantCulture);
        sh.WaitForExit();
        // Wait until it has exec'd sleep, so the dump sees comm "sleep".
        for (int i = 0; i < 100 && File.ReadAllText($"/proc/{pid}/comm").Trim() != "sleep"; i++)
            Thread.Sleep(20);
        var r = CrispCli.Run(TimeSpan.FromSeconds(120), "dump", "-t", pid.ToString(System.Globalization.CultureInfo.InvariantCulture), "-D", dir);
        try { Process.GetProcessById(pid).Kill(); } catch (ArgumentException) { } catch (InvalidOperationException) { }
        Assert.True(r.ExitCode == 0, $"dump failed: {r.Stderr}");
        return (dir, pid);
    }

    public void Dispose()
    {
        if (_dump.IsValueCreated)
            try { Directory.Delete(_dump.Value.Dir, recursive: true); } catch (IOException) { }
    }
}

public class ShowRealDumpTests(SleepDumpFixture dump) : IClassFixture<SleepDumpFixture>
{
    [RootFact]
    public void ShowEveryNonRawImageEqualsCrit()
    {
        int compared = 0;
        foreach (string path in Directory.EnumerateFiles(dump.Dir, "*.img").Order(StringComparer.Ordinal))
        {
            var file = ImageKind.FromFileName(path);
            if (Path.GetFileName(path) == "stats-dump")   // a service image, named without .img
            {
                Assert.Null(file);
                Crit317.AssertShowEqual(path, CrispCli.Run("show", path).Stdout);
                continue;
            }
            Assert.NotNull(file);
            if (file.Value.Kind.IsRaw)
                continue;
            var r = CrispCli.Run("show", path, "--show-secrets");   // crit prints payloads as they are
            Assert.True(r.ExitCode == 0, $"{path}: {r.Stderr}");
            Crit317.AssertShowEqual(path, r.Stdout);
            compared++;
        }
        Assert.True(compared >= 6, $"only {compared} images compared");
    }

    [RootFact]
    public void ShowDirSummarisesTheSleep()
    {
        var r = CrispCli.Run("show", dump.Dir);
        Assert.True(r.ExitCode == 0, r.Stderr);
        string o = r.Stdout;
        Assert.Contains($"checkpoint {dump.Dir}", o);
        Assert.Contains("tasks: 1", o);
        Assert.Contains($"pid {dump.Pid} ppid ", o);
        Assert.Contains($"pgid {dump.Pid} sid {dump.Pid} comm \"sleep\" state alive threads 1 seccomp disabled", o);
        Assert.Matches(@"memory: \d+ vmas, .* mapped, [1-9]\d* pages stored \(.*\) in \d+ runs, pages-\d+\.img", o);
        Assert.Matches(@"files: \d+ fds \(fdinfo-\d+\.img\)", o);
        Assert.Contains("fd 0: REG /dev/null", o);
        Assert.Contains("fd 1: REG /dev/null", o);
        long total = Directory.EnumerateFiles(dump.Dir).Sum(f => new FileInfo(f).Length);
        Assert.Contains($"images: {Directory.EnumerateFiles(dump.Dir).Count()} files", o);
        Assert.True(total > 4096);
    }

    [RootFact]
    public void PagesStoredMatchPagemapAndPagesFile()
    {
        var dir = ImageDirectory.Open(dump.Dir);
        using var map = dir.OpenPagemap(dump.Pid);
        Assert.Equal(new FileInfo(map.PagesPath).Length, map.PresentPages * 4096);
        Assert.Contains($"{map.PresentPages} pages stored", CrispCli.Run("show", dump.Dir).Stdout);
    }
}
