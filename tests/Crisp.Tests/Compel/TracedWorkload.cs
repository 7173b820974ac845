using System.Runtime.InteropServices;
using Crisp.Compel;
using Crisp.Linux;
using Crisp.Tests.Support;
using Microsoft.Win32.SafeHandles;

namespace Crisp.Tests.Compel;

/// <summary>A C workload spawned with posix_spawn (never System.Diagnostics.Process), its stdin and
/// stdout on pipes; killed and reaped on Dispose if still there.</summary>
public sealed partial class TracedWorkload : IDisposable
{
    private readonly FileStream _stdin;
    private readonly FileStream _stdout;
    private readonly Tracer _tracer;
    private WaitStatus? _exit;

    public int Pid { get; }

    public TracedWorkload(Tracer tracer, string name, string[] args, string buildFlags = "")
    {
        _tracer = tracer;
        string exe = Support.Workloads.Build(name, buildFlags);
        int[] inPipe = Pipe(), outPipe = Pipe();
        try
        {
            Pid = Spawn.Start(exe, [exe, .. args], new SpawnOptions { Fds = [(inPipe[0], 0), (outPipe[1], 1)] });
        }
        finally
        {
            close(inPipe[0]);
            close(outPipe[1]);
        }
        _stdin = new FileStream(new SafeFileHandle(inPipe[1], true), FileAccess.Write, 1);
        _stdout = new FileStream(new SafeFileHandle(outPipe[0], true), FileAccess.Read, 1);
    }

    /// <summary>Reads exactly <paramref name="count"/> bytes from the workload's stdout.</summary>
    public byte[] Read(int count, int timeoutMs = 10_000)
    {
        var buffer = new byte[count];
        var task = Task.Run(() => _stdout.ReadAtLeast(buffer, count, throwOnEndOfStream: false));
        if (!task.Wait(timeoutMs))
            throw new TimeoutException($"workload {Pid}: no {count} bytes of output in {timeoutMs} ms");
        return buffer[..task.Result];
    }

    public void ExpectByte(char c, int timeoutMs = 10_000)
    {
        var b = Read(1, timeoutMs);
        Assert.True(b.Length == 1 && b[0] == c, $"workload {Pid}: expected '{c}', got '{System.Text.Encoding.ASCII.GetString(b)}'");
    }

    /// <summary>Everything until EOF (the workload exited).</summary>
    public string ReadToEnd(int timeoutMs = 10_000)
    {
        var task = Task.Run(() => { using var ms = new MemoryStream(); _stdout.CopyTo(ms); return ms.ToArray(); });
        if (!task.Wait(timeoutMs))
            throw new TimeoutException($"workload {Pid}: output did not end in {timeoutMs} ms");
        return System.Text.Encoding.Latin1.GetString(task.Result);
    }

    public void Write(string text)
    {
        _stdin.Write(System.Text.Encoding.ASCII.GetBytes(text));
        _stdin.Flush();
    }

    public void Signal(int sig) => Assert.Equal(0, kill(Pid, sig));

    /// <summary>Waits for the exit and reaps (on the tracer thread, since the child may have been traced).</summary>
    public WaitStatus WaitExit(int timeoutMs = 10_000)
    {
        var deadline = Environment.TickCount64 + timeoutMs;
        while (_exit == null)
        {
            _exit = _tracer.Run(() => Spawn.TryReap(Pid));
            if (_exit != null)
                break;
            if (Environment.TickCount64 > deadline)
                throw new TimeoutException($"workload {Pid} did not exit in {timeoutMs} ms");
            Thread.Sleep(5);
        }
        return _exit.Value;
    }

    /// <summary>SIGUSR1 (the compel workloads' "finish"), then the workload must exit with code 0.</summary>
    public void FinishAndExpectExitZero()
    {
        Signal(10);
        Assert.Equal(0, WaitExit().ExitCode);
    }

    /// <summary>For a child reaped elsewhere (e.g. by a remote syscall that saw it die).</summary>
    public void MarkReaped(WaitStatus status) => _exit = status;

    public char State => File.ReadAllText($"/proc/{Pid}/stat").Split(") ")[1][0];

    public void Dispose()
    {
        if (_exit == null)
        {
            kill(Pid, 9);
            try { WaitExit(); } catch (TimeoutException) { }
        }
        _stdin.Dispose();
        _stdout.Dispose();
    }

    private static unsafe int[] Pipe()
    {
        int* fds = stackalloc int[2];
        if (pipe2(fds, 0x80000 /* O_CLOEXEC */) != 0)
            throw new SyscallException("pipe2", Marshal.GetLastPInvokeError());
        return [fds[0], fds[1]];
    }

    [LibraryImport("libc", SetLastError = true)] private static unsafe partial int pipe2(int* fds, int flags);
    [LibraryImport("libc")] private static partial int close(int fd);
    [LibraryImport("libc")] private static partial int kill(int pid, int sig);
}
