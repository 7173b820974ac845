using Crisp.Linux;

namespace Crisp.Bench;

/// <summary>One bench_mem process (bench/workloads/bench_mem.c), this process's child in its own
/// session; it reports "ready", "gap US" and "ok"/"BAD" lines in its state file.</summary>
public sealed class Workload : IDisposable
{
    public const int SIGUSR1 = 10, SIGUSR2 = 12;

    private Workload(string dir, int pid)
    {
        Dir = dir;
        Pid = pid;
    }

    public string Dir { get; }
    public int Pid { get; }
    public string StateFile => Path.Combine(Dir, "state");
    public string[] Lines => File.Exists(StateFile) ? File.ReadAllLines(StateFile) : [];

    public static Workload Start(string exe, string root, string mode, long arg)
    {
        string dir = Directory.CreateDirectory(Path.Combine(root, $"w-{Guid.NewGuid():N}")).FullName;
        const int flags = FileIo.O_WRONLY | FileIo.O_CREAT | FileIo.O_TRUNC;
        int pid = Spawn.Start(exe, [exe, Path.Combine(dir, "state"), mode, arg.ToString()], new SpawnOptions
        {
            NewSession = true,
            Opens = [(0, "/dev/null", FileIo.O_RDONLY, 0), (1, Path.Combine(dir, "out"), flags, 0x1a4), (2, Path.Combine(dir, "err"), flags, 0x1a4)],
        });
        var w = new Workload(dir, pid);
        w.WaitFor(l => l == "ready", "ready", 600);
        return w;
    }

    public string WaitFor(Func<string, bool> match, string what, int seconds = 120)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (true)
        {
            if (Lines.FirstOrDefault(match) is { } line)
                return line;
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"bench_mem {Pid}: no '{what}' in {seconds}s; stderr: {File.ReadAllText(Path.Combine(Dir, "err"))}");
            Thread.Sleep(2);
        }
    }

    /// <summary>The longest stop the workload's 1 ms ticker saw since the last call.</summary>
    public TimeSpan TakeGap()
    {
        int before = Lines.Count(l => l.StartsWith("gap "));
        Signal(SIGUSR2);
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (Lines.Where(l => l.StartsWith("gap ")).ToArray() is var gaps && gaps.Length == before)
        {
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"bench_mem {Pid}: no gap report");
            Thread.Sleep(2);
        }
        return TimeSpan.FromMicroseconds(long.Parse(Lines.Where(l => l.StartsWith("gap ")).Last()[4..]));
    }

    public void Signal(int sig) => RawSyscall.Call("kill", Sysno.kill, Pid, sig);

    /// <summary>After a killing dump the PID must be free before a restore.</summary>
    public void WaitGone()
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (Directory.Exists($"/proc/{Pid}"))
        {
            try { Spawn.TryReap(Pid); }
            catch (SyscallException) { }
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"bench_mem {Pid} did not go away");
            Thread.Sleep(2);
        }
    }

    public void Dispose()
    {
        if (RawSyscall.TryCall(Sysno.kill, -Pid, 9) == 0 || RawSyscall.TryCall(Sysno.kill, Pid, 9) == 0)
        {
            try { Spawn.TryReap(Pid); }
            catch (SyscallException) { }
        }
        try { Directory.Delete(Dir, recursive: true); } catch (IOException) { }
    }
}
