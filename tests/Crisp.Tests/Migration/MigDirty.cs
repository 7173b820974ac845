using Crisp.Linux;
using Crisp.Tests.Integration;
using Crisp.Tests.Support;

namespace Crisp.Tests.Migration;

/// <summary>tests/workloads/mig_dirty.c in a private scratch directory on disk, our child in its own session: a
/// buffer of known pages; each round (SIGUSR2) rewrites a known fraction of them and maps one new 64-page region;
/// SIGUSR1 checks every page it wrote.</summary>
internal sealed class MigDirty : IDisposable
{
    public const int PageSize = 4096;

    private MigDirty(string dir, int pid)
    {
        Dir = dir;
        Pid = pid;
    }

    public string Dir { get; }
    public int Pid { get; }
    private int _rounds;

    /// <summary>A directory for images under <see cref="Dir"/> (made 0700 by the dump: it does not exist yet).</summary>
    public string Images(string name) => Path.Combine(Dir, name);

    /// <summary>Started here, or in a network namespace (`ip netns exec`, which becomes the workload: same pid,
    /// still our child).</summary>
    public static MigDirty Start(int mib, int percent, string? netns = null)
    {
        string exe = Support.Workloads.Build("mig_dirty");
        string dir = $"/var/tmp/crisp-mig-{Guid.NewGuid():N}";
        Directory.CreateDirectory(dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        string[] argv = [exe, dir, mib.ToString(), percent.ToString()];
        int pid = netns is null
            ? Spawn.Start(exe, argv, new SpawnOptions { NewSession = true, Opens = Live.DevNullStdio })
            : Spawn.Start("/usr/sbin/ip", ["ip", "netns", "exec", netns, .. argv], new SpawnOptions { NewSession = true, Opens = Live.DevNullStdio });
        var w = new MigDirty(dir, pid);
        Live.WaitFor(() => File.Exists(Path.Combine(dir, "ready")) || Spawn.TryReap(pid) is not null, "mig_dirty to get ready", TimeSpan.FromSeconds(60));
        Assert.True(File.Exists(Path.Combine(dir, "ready")), "mig_dirty exited before it was ready");
        return w;
    }

    /// <summary>One round of writes; returns the pages the workload wrote.</summary>
    public long Round()
    {
        int n = ++_rounds;
        Signals.Kill(Pid, 12);   // SIGUSR2
        string file = Path.Combine(Dir, $"round-{n}");
        Live.WaitFor(() => File.Exists(file) && File.ReadAllText(file).EndsWith('\n'), $"mig_dirty round {n}", TimeSpan.FromSeconds(30));
        return long.Parse(File.ReadAllText(file).Trim());
    }

    /// <summary>SIGUSR1: every page checked; the verdict must be PASS.</summary>
    public void ExpectPass()
    {
        Signals.Kill(Pid, Live.SIGUSR1);
        string verdict = Path.Combine(Dir, "verdict");
        Live.WaitFor(() => File.Exists(verdict) && File.ReadAllText(verdict).EndsWith('\n'), "mig_dirty's verdict", TimeSpan.FromSeconds(60));
        Assert.Equal("PASS", File.ReadAllText(verdict).Trim());
        Live.WaitPidsFree([Pid], ourChild: Pid);
    }

    /// <summary>Pages stored in a checkpoint directory's pages-*.img (the data this dump copied itself).</summary>
    public static long StoredPages(string images) =>
        Directory.EnumerateFiles(images, "pages-*.img").Sum(f => new FileInfo(f).Length) / PageSize;

    /// <summary>The task's fds that are userfaultfds (crisp's tracking one while a pre-dump chain is open).</summary>
    public static int UserfaultFds(int pid) =>
        Directory.EnumerateFileSystemEntries($"/proc/{pid}/fd").Count(f => new FileInfo(f).LinkTarget == "anon_inode:[userfaultfd]");

    public void Dispose()
    {
        RawSyscall.TryCall(Sysno.kill, -Pid, Live.SIGKILL);
        Live.KillAll([Pid], Pid);
        try { Directory.Delete(Dir, recursive: true); } catch (IOException) { }
    }
}
