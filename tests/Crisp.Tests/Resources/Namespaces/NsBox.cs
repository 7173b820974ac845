using System.Globalization;
using Crisp.Linux;
using Crisp.Tests.Integration;
using Crisp.Tests.Support;

namespace Crisp.Tests.Resources.Namespaces;

/// <summary>The nsbox workload under `unshare --fork --pid --time --monotonic 1000000 --boottime 2000000 [more]`:
/// PID 1 of its own pid and time namespaces (and whatever else the test asks for) with one child. Reports come
/// from inside on SIGUSR1 (report-N); dump and restore go through the CLI with --restore-sibling, so the restored
/// root is this test process's child.</summary>
internal sealed class NsBox : IDisposable
{
    public const long MonotonicOffset = 1_000_000, BoottimeOffset = 2_000_000;

    private readonly Live.TempDir _dir = new();
    private int _unshare;
    private int _reports;

    public string Dir => _dir.Path;
    /// <summary>The tree's root (host pid), alive.</summary>
    public int Root { get; private set; }
    /// <summary>The child's host pid.</summary>
    public int Child => PidNamespaceTestsChildren(Root).Single();

    /// <param name="mode">nsbox's second argument: "net" (lo up, addresses, sockets), "lo" (lo up) or null.</param>
    /// <param name="before">Shell commands run before unshare, in the process that becomes it (e.g. joining cgroups).</param>
    public NsBox(IReadOnlyList<string> unshareFlags, string? mode = null, string? before = null)
    {
        string exe = Support.Workloads.Build("nsbox");
        string[] unshare = ["unshare", "--fork", "--pid", "--time", "--monotonic", $"{MonotonicOffset}",
            "--boottime", $"{BoottimeOffset}", .. unshareFlags, exe, _dir.Path, .. (mode is null ? Array.Empty<string>() : [mode])];
        string[] argv = before is null ? unshare : ["sh", "-c", before + "\nexec \"$@\"", "sh", "/usr/bin/unshare", .. unshare[1..]];
        _unshare = Spawn.Start(before is null ? "/usr/bin/unshare" : "/bin/sh", argv,
            new SpawnOptions { NewSession = true, Opens = Live.DevNullStdio });
        string ready = Path.Combine(Dir, "ready");
        Live.WaitFor(() =>
        {
            Assert.Null(Spawn.TryReap(_unshare));
            return File.Exists(ready) && File.ReadAllText(ready).EndsWith('\n');
        }, "nsbox's ready line");
        Root = PidNamespaceTestsChildren(_unshare).Single();
    }

    /// <summary>Dumps the tree (killing it) into a new images dir; returns it.</summary>
    public string Dump(string name, params string[] extra)
    {
        string images = Path.Combine(Dir, name);
        Directory.CreateDirectory(images, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        Run(["dump", "-t", Root.ToString(CultureInfo.InvariantCulture), "-D", images, "-v4", "-o", "dump.log", .. extra]);
        if (_unshare > 0)
        {
            Live.ReapWithin(_unshare);
            _unshare = 0;
        }
        else
            Live.ReapWithin(Root);
        Root = 0;
        return images;
    }

    /// <summary>Restores as this process's child; returns the new root's host pid.</summary>
    public int Restore(string images, params string[] extra)
    {
        string pidfile = Path.Combine(images, "..", Path.GetFileName(images) + ".pid");
        Run(["restore", "-D", images, "-d", "--restore-sibling", "--pidfile", pidfile, "-v4", "-o", "restore.log", .. extra]);
        Root = int.Parse(File.ReadAllText(pidfile).Trim(), CultureInfo.InvariantCulture);
        return Root;
    }

    /// <summary>The tree restored by the test itself (as this process's child).</summary>
    public void Adopt(int root) => Root = root;

    internal static string NsLink(int pid, string kind) => new FileInfo($"/proc/{pid}/ns/{kind}").LinkTarget!;

    /// <summary>SIGUSR1, then the words of the next report-N.</summary>
    public string[] Report()
    {
        string file = Path.Combine(Dir, $"report-{++_reports}");
        global::Crisp.Linux.Signals.Kill(Root, Live.SIGUSR1);
        Live.WaitFor(() => File.Exists(file) && File.ReadAllText(file).EndsWith('\n'), $"nsbox's {Path.GetFileName(file)}");
        return File.ReadAllText(file).Trim().Split(' ');
    }

    public static CrispCli.Result Run(string[] args)
    {
        var r = CrispCli.Run(args);
        Assert.True(r.ExitCode == 0, $"crisp {string.Join(' ', args)}: exit {r.ExitCode}\n{r.Stderr}");
        return r;
    }

    internal static int[] PidNamespaceTestsChildren(int pid) => Crisp.Tests.Namespaces.PidNamespaceTests.Children(pid);

    public void Dispose()
    {
        if (Root > 0)
        {
            RawSyscall.TryCall(Sysno.kill, Root, Live.SIGKILL);
            if (_unshare == 0)
                Live.ReapWithin(Root);
        }
        if (_unshare > 0)
        {
            RawSyscall.TryCall(Sysno.kill, _unshare, Live.SIGKILL);
            Live.ReapWithin(_unshare);
        }
        _dir.Dispose();
    }
}
