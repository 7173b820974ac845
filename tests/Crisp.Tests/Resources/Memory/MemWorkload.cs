using Crisp.Linux;
using Crisp.Tests.Support;

namespace Crisp.Tests.Resources.Memory;

/// <summary>tests/workloads/mem_check.c started with posix_spawn in its own session, stdout/stderr to files
/// (so nothing but memory and registers has to survive a checkpoint), as the test process's child.</summary>
public sealed class MemWorkload : IDisposable
{
    public const int SIGUSR1 = 10;

    private MemWorkload(string dir, int pid)
    {
        Dir = dir;
        Pid = pid;
    }

    public string Dir { get; }
    public int Pid { get; }
    public string Exe { get; private init; } = "";
    public string ImagesDir => Path.Combine(Dir, "images");
    public string StateFile => Path.Combine(Dir, "state");
    public string Stdout => ReadOrEmpty(Path.Combine(Dir, "out"));
    public string Stderr => ReadOrEmpty(Path.Combine(Dir, "err"));
    public int WaitingCount => ReadOrEmpty(StateFile).Split('\n', StringSplitOptions.RemoveEmptyEntries).Length;

    public static MemWorkload Start(int bigMiB = 0)
    {
        string exe = Support.Workloads.Build("mem_check");
        string dir = Directory.CreateTempSubdirectory("crisp-mem-").FullName;
        const int flags = FileIo.O_WRONLY | FileIo.O_CREAT | FileIo.O_TRUNC;
        var argv = new List<string> { exe, Path.Combine(dir, "state") };
        if (bigMiB > 0)
            argv.Add(bigMiB.ToString());
        int pid = Spawn.Start(exe, argv, new SpawnOptions
        {
            NewSession = true,
            Opens = [(0, "/dev/null", FileIo.O_RDONLY, 0), (1, Path.Combine(dir, "out"), flags, 0x1a4), (2, Path.Combine(dir, "err"), flags, 0x1a4)],
        });
        var w = new MemWorkload(dir, pid) { Exe = exe };
        w.WaitUntil(() => w.WaitingCount >= 1, "ready");
        return w;
    }

    public void WaitUntil(Func<bool> condition, string what, int seconds = 30)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"mem_check {Pid}: no '{what}' in {seconds}s; stderr:\n{Stderr}");
            Thread.Sleep(5);
        }
    }

    /// <summary>After a killing dump: the dump's tracer (this process) may have consumed the exit already;
    /// either way the PID must be free before a restore.</summary>
    public void WaitGone()
    {
        try { Spawn.TryReap(Pid); }
        catch (SyscallException) { }
        WaitUntil(() => !Directory.Exists($"/proc/{Pid}"), "PID free");
    }

    public void Signal(int sig) => RawSyscall.Call("kill", Sysno.kill, Pid, sig);

    private static string ReadOrEmpty(string path)
    {
        try { return File.ReadAllText(path); }
        catch (FileNotFoundException) { return ""; }
    }

    public void Dispose()
    {
        if (RawSyscall.TryCall(Sysno.kill, Pid, 9) == 0)
        {
            try { Spawn.TryReap(Pid); }
            catch (SyscallException) { }   // reaped already (or not our child any more)
        }
        try { Directory.Delete(Dir, recursive: true); } catch (IOException) { }
    }
}
