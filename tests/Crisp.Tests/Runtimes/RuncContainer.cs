using System.Diagnostics;
using System.Text.Json.Nodes;
using Crisp.Tests.Hardened;
using Crisp.Tests.Support;

namespace Crisp.Tests.Runtimes;

/// <summary>A busybox OCI bundle run by Debian's runc with crisp installed as its `criu` (by `crisp install
/// --as-criu --prefix`, the README's step, into a prefix put first on runc's PATH). The container's init is a
/// shell that appends 0, 1, 2… to /tmp/count in its rootfs; its stdio are pipes, as container engines give
/// (runc passes them back to `criu restore` as --inherit-fd).</summary>
internal sealed class RuncContainer : IDisposable
{
    public const string Counter = "i=0; while :; do echo $i >> /tmp/count; i=$((i+1)); usleep 20000; done";

    private readonly string _dir;
    private readonly List<Process> _stdio = [];
    public string Id { get; }
    public string Bundle => Path.Combine(_dir, "bundle");
    public string Rootfs => Path.Combine(Bundle, "rootfs");
    public string Images(int n) => Path.Combine(_dir, $"images{n}");
    public string Work(int n) => Path.Combine(_dir, $"work{n}");
    public string CountFile => Path.Combine(Rootfs, "tmp", "count");
    private string Prefix => Path.Combine(_dir, "prefix");
    private string RuncLog => Path.Combine(_dir, "runc.log");

    private readonly Dictionary<string, string> _env;

    /// <summary><paramref name="env"/>: more environment for runc and so for crisp (e.g. the CUDA stand-in's).</summary>
    public RuncContainer(string name, Action<JsonObject>? configure = null, Dictionary<string, string>? env = null)
    {
        _env = env ?? [];
        _dir = Directory.CreateTempSubdirectory("crisp-runc-").FullName;
        Id = $"crisp-{name}-{Environment.ProcessId}";
        var install = CrispCli.Run("install", "--as-criu", "--prefix", Prefix);
        Assert.True(install.ExitCode == 0, $"crisp install: {install.Stderr}");
        Assert.True(File.Exists(Path.Combine(Prefix, "bin", "criu")), "crisp install --as-criu made no criu");

        foreach (var d in new[] { "bin", "proc", "sys", "dev", "tmp", "etc" })
            Directory.CreateDirectory(Path.Combine(Rootfs, d));
        File.Copy("/bin/busybox", Path.Combine(Rootfs, "bin", "busybox"));
        foreach (var applet in new[] { "sh", "usleep", "sleep", "cat" })
            File.CreateSymbolicLink(Path.Combine(Rootfs, "bin", applet), "busybox");
        File.SetUnixFileMode(Path.Combine(Rootfs, "tmp"), (UnixFileMode)0x3ff | UnixFileMode.StickyBit);
        Runc(TimeSpan.FromSeconds(20), "spec", "--bundle", Bundle);
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(Bundle, "config.json")))!.AsObject();
        config["process"]!["terminal"] = false;
        config["process"]!["args"] = new JsonArray("/bin/sh", "-c", Counter);
        config["root"]!["readonly"] = false;
        configure?.Invoke(config);
        File.WriteAllText(Path.Combine(Bundle, "config.json"), config.ToJsonString());
    }

    /// <summary>`runc run -d`: the container runs on after runc returns.</summary>
    public void Run(params string[] extra) => Detached(["run", "-d", "--bundle", Bundle, .. extra, Id]);

    public void Checkpoint(int n, params string[] extra) =>
        Runc(TimeSpan.FromSeconds(60), ["checkpoint", "--image-path", Images(n), "--work-path", Work(n), .. extra, Id], Work(n), "dump.log");

    public void Restore(int n, params string[] extra) =>
        Detached(["restore", "-d", "--bundle", Bundle, "--image-path", Images(n), "--work-path", Work(n), .. extra, Id]);

    /// <summary>The container's init as the host sees it, from `runc state`.</summary>
    public int Pid => (int)JsonNode.Parse(Runc(TimeSpan.FromSeconds(20), "state", Id))!["pid"]!;

    public string Status => (string)JsonNode.Parse(Runc(TimeSpan.FromSeconds(20), "state", Id))!["status"]!;

    public List<long> Numbers() =>
        File.Exists(CountFile) ? [.. File.ReadAllLines(CountFile).Where(l => l.Length > 0).Select(long.Parse)] : [];

    /// <summary>The counter counted 0, 1, 2… with no gap and no repeat.</summary>
    public void AssertContinuous()
    {
        var numbers = Numbers();
        Assert.Equal(Enumerable.Range(0, numbers.Count).Select(i => (long)i), numbers);
    }

    public void WaitCounting(int atLeast, string what) =>
        Bench.WaitFor(() => Numbers() is { Count: > 0 } n && n.Count >= atLeast, what, 20);

    /// <summary>Runs runc to its end; a failure shows its output and crisp's log.</summary>
    public string Runc(TimeSpan timeout, params string[] args) => Runc(timeout, args, null, null);

    private string Runc(TimeSpan timeout, string[] args, string? workDir, string? log)
    {
        var r = CrispCli.RunProcess("runc", timeout, Env(), pid => HangReport.Describe(pid, ContainerPids()) + "\n" + LastLines(RuncLog, 6) + "\n" + LastLines(Path.Combine(workDir ?? "", log ?? ""), 25)
            + (_env.TryGetValue("CUDA_STANDIN_DIR", out var standIn) && File.Exists(Path.Combine(standIn, "calls.log")) ? "\ncuda-checkpoint calls:\n" + File.ReadAllText(Path.Combine(standIn, "calls.log")) : ""),
            ["--log", RuncLog, .. args]);
        Assert.True(r.ExitCode == 0, $"runc {string.Join(' ', args)}: exit {r.ExitCode}\n{r.Stderr}\n{CrispLog(workDir, log)}");
        return r.Stdout;
    }

    /// <summary>runc with the container's stdio as pipes held by this test: runc returns, the container keeps
    /// them (so no read to their end here).</summary>
    private void Detached(params string[] args)
    {
        var psi = new ProcessStartInfo("runc") { UseShellExecute = false, RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var (k, v) in Env())
            psi.Environment[k] = v;
        foreach (var a in (string[])["--log", RuncLog, .. args])
            psi.ArgumentList.Add(a);
        var p = Process.Start(psi)!;
        _stdio.Add(p);
        Assert.True(p.WaitForExit(TimeSpan.FromSeconds(60)), $"runc {args[0]} did not return");
        string work = args.SkipWhile(a => a != "--work-path").Skip(1).FirstOrDefault() ?? "";
        Assert.True(p.ExitCode == 0, $"runc {string.Join(' ', args)}: exit {p.ExitCode}\n{Tail(RuncLog)}\n{CrispLog(work, "restore.log")}");
    }

    private Dictionary<string, string> Env()
    {
        var env = new Dictionary<string, string>(_env);
        env["PATH"] = $"{Path.Combine(Prefix, "bin")}:{_env.GetValueOrDefault("PATH") ?? Environment.GetEnvironmentVariable("PATH")}";
        return env;
    }

    /// <summary>The processes in the container's cgroups (for a hang report), from every v1 hierarchy and v2.</summary>
    private List<int> ContainerPids()
    {
        var pids = new List<int>();
        foreach (var root in new[] { "/sys/fs/cgroup/freezer", "/sys/fs/cgroup/pids", "/sys/fs/cgroup/unified" })
        {
            if (!Directory.Exists(root))
                continue;
            foreach (var dir in Directory.EnumerateDirectories(root, "*" + Id + "*", SearchOption.AllDirectories))
                foreach (var line in File.ReadAllLines(Path.Combine(dir, "cgroup.procs")))
                    if (int.TryParse(line, out int pid))
                        pids.Add(pid);
        }
        return pids;
    }

    private static string CrispLog(string? dir, string? name) =>
        dir is null || name is null ? "" : Tail(Path.Combine(dir, name));

    private static string LastLines(string file, int n) =>
        File.Exists(file) ? string.Join('\n', File.ReadAllLines(file).TakeLast(n)) : $"(no {file})";

    private static string Tail(string file) =>
        File.Exists(file) ? string.Join('\n', File.ReadAllLines(file).Where(l => l.Contains("Error:"))
            .Concat(File.ReadAllLines(file).Where(l => !l.Contains("Debug:")).TakeLast(10))) : $"(no {file})";

    public void Dispose()
    {
        try { CrispCli.RunProcess("runc", TimeSpan.FromSeconds(20), Env(), "delete", "-f", Id); } catch (Exception) { }
        foreach (var p in _stdio)
            p.Dispose();
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }
}
