using Crisp.Dump;
using Crisp.Linux;
using Crisp.Restore;
using Crisp.Tests.Integration;

namespace Crisp.Tests.Support;

/// <summary>A workload handed a scratch directory as its first argument that talks through files there: it
/// writes "ready" once set up and "verdict" after SIGUSR1. Its stdin/stdout/stderr are /dev/null, so nothing
/// outside the tree has to survive a checkpoint. On Dispose it is killed (while <see cref="Alive"/>) and its
/// directory removed.</summary>
internal class DirWorkload(string tempPrefix) : IDisposable
{
    private const int SIGKILL = 9, SIGUSR1 = 10;

    public string Dir { get; } = Directory.CreateTempSubdirectory(tempPrefix).FullName;
    public int Pid { get; private set; }
    /// <summary>Whether <see cref="Pid"/> is a live process of ours (the one started or its restored self) that
    /// Dispose must kill: false while it is dumped (killed) and once it has exited.</summary>
    public bool Alive { get; set; }
    public string ReadyFile => Path.Combine(Dir, "ready");
    /// <summary>Differences <see cref="Restore"/> allows between the tree before <see cref="Dump"/> and after.</summary>
    public StateAllowList StateAllow { get; set; } = StateAllowList.Default;
    /// <summary>Why this workload's state cannot be compared across a cycle; null (the default) compares it.</summary>
    public string? SkipStateCheck { get; set; }
    private TaskStateSnapshot? _before;
    public string Verdict => VerdictIn(Dir);

    /// <summary>A new directory <paramref name="name"/> in <see cref="Dir"/> for a checkpoint's images (mode 0700).</summary>
    public string NewImagesDir(string name) =>
        Directory.CreateDirectory(Path.Combine(Dir, name), UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute).FullName;

    public void Start(string exe, IReadOnlyList<string> args, bool newSession = false)
    {
        Pid = Spawn.Start(exe, [exe, Dir, .. args], new SpawnOptions
        {
            NewSession = newSession,
            Opens = Live.DevNullStdio,
        });
        Alive = true;
    }

    /// <summary>Waits at most 20 s for the ready file (and, if given, for <paramref name="complete"/> to accept its
    /// words), failing at once if the workload exits; returns its words.</summary>
    public string[] WaitReady(string name, Func<string[], bool>? complete = null)
    {
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (!File.Exists(ReadyFile) || complete is not null && !complete(ReadyWords()))
        {
            Assert.True(DateTime.UtcNow < deadline, $"{name} did not get ready");
            Assert.Null(Spawn.TryReap(Pid));
            Thread.Sleep(10);
        }
        return ReadyWords();
    }

    private string[] ReadyWords() => File.ReadAllText(ReadyFile).Trim().Split(' ');

    /// <summary>Dumps (and so kills) the workload as <paramref name="options"/> say, and reaps it unless the
    /// dumper's tracer thread (a thread of this process, its parent) already has. Returns how long the dump
    /// itself took (not the reaping: a killed task with many threads takes a while to go). The tree's state is
    /// snapshotted first, for <see cref="Restore"/> to compare (unless <see cref="SkipStateCheck"/>).</summary>
    public TimeSpan Dump(DumpOptions options, Log? log = null)
    {
        _before = SkipStateCheck is null ? TaskStateSnapshot.OfQuietTree(options.RootPid) : null;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        new Dumper(options, log ?? Log.Null).Run();
        var took = clock.Elapsed;
        try { Spawn.Reap(Pid); } catch (SyscallException) { }
        Alive = false;
        return took;
    }

    /// <summary>Restores the dumped workload detached; its root must have the workload's PID and the tree the
    /// state it had before <see cref="Dump"/> (up to <see cref="StateAllow"/>).</summary>
    public RestoredTree Restore(RestoreOptions options)
    {
        var tree = new Restorer(options, Log.Null).Run();
        Alive = true;
        Assert.Equal(Pid, tree.RootPid);
        if (_before is not null)
            StateDiff.AssertRestored(_before, StateAllow);
        _before = null;
        return tree;
    }

    /// <summary>Sends SIGUSR1 to the restored root; it must exit 0 within a minute with the verdict PASS.</summary>
    public void SignalAndExpectPass(RestoredTree tree) => SignalAndExpectPass(tree, Dir, () => Alive = false);

    /// <summary>Sends SIGUSR1 to the restored root of a workload writing its verdict into <paramref name="dir"/>,
    /// reaps it within a minute (then calls <paramref name="exited"/>) and asserts exit 0 and the verdict PASS.</summary>
    public static void SignalAndExpectPass(RestoredTree tree, string dir, Action exited)
    {
        RawSyscall.Call("kill", Sysno.kill, tree.RootPid, SIGUSR1);
        int rc = Live.ExitCodeWithin(tree);
        exited();
        string verdict = VerdictIn(dir);
        Assert.True(rc == 0, $"exit {rc}: {verdict}");
        Assert.Equal("PASS", verdict.Trim());
    }

    /// <summary>The verdict file in <paramref name="dir"/>, or "(no verdict)".</summary>
    public static string VerdictIn(string dir) =>
        File.Exists(Path.Combine(dir, "verdict")) ? File.ReadAllText(Path.Combine(dir, "verdict")) : "(no verdict)";

    public void Dispose()
    {
        if (Alive)
        {
            RawSyscall.TryCall(Sysno.kill, Pid, SIGKILL);
            try { Spawn.Reap(Pid); } catch (SyscallException) { }
        }
        Directory.Delete(Dir, recursive: true);
    }
}
