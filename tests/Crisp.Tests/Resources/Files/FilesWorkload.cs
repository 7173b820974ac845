using Crisp.Linux;
using Microsoft.Win32.SafeHandles;

namespace Crisp.Tests.Resources.Files;

/// <summary>tests/workloads/files_basic.c spawned with posix_spawn (stdin/stdout on pipes, stderr on
/// /dev/null); "check" makes it verify its fds and print PASS. Killed and reaped on Dispose.</summary>
public sealed class FilesWorkload : IDisposable
{
    private readonly FileStream _stdin;
    private readonly StreamReader _stdout;
    private bool _reaped;

    public int Pid { get; }
    public int Child { get; }
    public string Dir { get; }

    public FilesWorkload(params string[] args)
    {
        string exe = Support.Workloads.Build("files_basic");
        var (inR, inW) = Pipe();
        var (outR, outW) = Pipe();
        try
        {
            Pid = Spawn.Start(exe, [exe, .. args], new SpawnOptions
            {
                Fds = [(inR.Fd, 0), (outW.Fd, 1)],
                Opens = [(2, "/dev/null", FileIo.O_WRONLY, 0)],
                NewSession = true,   // its own session and group, inside the dumped tree
            });
        }
        finally
        {
            inR.Dispose();
            outW.Dispose();
        }
        _stdin = new FileStream(new SafeFileHandle(inW.Detach(), true), FileAccess.Write, 1);
        _stdout = new StreamReader(new FileStream(new SafeFileHandle(outR.Detach(), true), FileAccess.Read, 1));
        string line = ReadLine() ?? throw new InvalidOperationException("files_basic exited before ready");
        var parts = line.Split(' ');
        Assert.True(parts.Length == 4 && parts[0] == "ready", $"bad ready line '{line}'");
        Child = int.Parse(parts[2]);
        Dir = parts[3];
        // Ready is printed just before the blocking read of stdin; let it get there.
        var deadline = DateTime.UtcNow.AddSeconds(5);
        while (Crisp.Linux.Proc.ProcStat.Read(Pid).State != 'S' && DateTime.UtcNow < deadline)
            Thread.Sleep(2);
    }

    private static (UnixFd, UnixFd) Pipe()
    {
        var (r, w) = Crisp.Resources.Files.FdOps.Pipe();
        return (r, w);
    }

    private string? ReadLine()
    {
        var t = Task.Run(_stdout.ReadLine);
        if (!t.Wait(TimeSpan.FromSeconds(20)))
            throw new TimeoutException($"files_basic {Pid}: no output");
        return t.Result;
    }

    /// <summary>Asks the workload to check itself; returns its verdict output and exit code.</summary>
    public (string Output, int ExitCode) Check()
    {
        _stdin.Write("check\n"u8);
        _stdin.Flush();
        var t = Task.Run(_stdout.ReadToEnd);
        if (!t.Wait(TimeSpan.FromSeconds(20)))
            throw new TimeoutException($"files_basic {Pid}: no verdict");
        var status = Spawn.Reap(Pid);
        _reaped = true;
        return (t.Result, status.ExitCode);
    }

    public void Dispose()
    {
        if (!_reaped)
        {
            RawSyscall.TryCall(Sysno.kill, Child, 9);
            RawSyscall.TryCall(Sysno.kill, Pid, 9);
            Spawn.TryReap(Pid);
            if (Directory.Exists($"/proc/{Pid}"))
                Spawn.Reap(Pid);
        }
        _stdin.Dispose();
        _stdout.Dispose();
        try { Directory.Delete(Dir, recursive: true); } catch (IOException) { }
    }
}
