using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;

namespace Crisp.Tests.Workloads;

/// <summary>One workload process run under the ready / SIGUSR1 / verdict protocol, without crisp.</summary>
public sealed partial class WorkloadRun : IDisposable
{
    public const int SIGUSR1 = 10;
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    private readonly Process _process;
    private readonly StringBuilder _stderr = new();
    private readonly TaskCompletionSource _stderrDone = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public int Pid => _process.Id;
    public StreamWriter StandardInput => _process.StandardInput;
    public string Stderr { get { lock (_stderr) return _stderr.ToString(); } }

    private WorkloadRun(Process process)
    {
        _process = process;
        _process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is null)
                _stderrDone.TrySetResult();
            else
                lock (_stderr) _stderr.AppendLine(e.Data);
        };
        _process.BeginErrorReadLine();
    }

    public static WorkloadRun Start(string exe, IEnumerable<string> args, IDictionary<string, string>? env = null,
        bool redirectStdin = false)
    {
        var psi = new ProcessStartInfo(exe)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = redirectStdin,
            UseShellExecute = false,
        };
        foreach (var a in args)
            psi.ArgumentList.Add(a);
        if (env is not null)
            foreach (var (k, v) in env)
                psi.Environment[k] = v;
        return new WorkloadRun(Process.Start(psi)!);
    }

    /// <summary>Next stdout line (null at EOF); fails the test on timeout.</summary>
    public string? ReadLine()
    {
        var line = _process.StandardOutput.ReadLineAsync();
        if (!line.Wait(Timeout))
            throw new TimeoutException($"no stdout line from pid {Pid} in {Timeout}; stderr:\n{Stderr}");
        return line.Result;
    }

    /// <summary>Reads the ready line, asserting it starts with "ready"; returns it.</summary>
    public string WaitReady()
    {
        string? line = ReadLine();
        Assert.True(line is not null && line.StartsWith("ready", StringComparison.Ordinal),
            $"expected a ready line, got '{line}'; exited={_process.HasExited}; stderr:\n{Stderr}");
        return line!;
    }

    public void Signal(int sig)
    {
        if (kill(Pid, sig) != 0)
            throw new InvalidOperationException($"kill({Pid}, {sig}) failed: errno {Marshal.GetLastPInvokeError()}");
    }

    /// <summary>Waits for exit (and for all of stderr); returns the exit code.</summary>
    public int WaitExit()
    {
        if (!_process.WaitForExit(Timeout))
            throw new TimeoutException($"pid {Pid} did not exit in {Timeout}; stderr:\n{Stderr}");
        _process.WaitForExit();
        _stderrDone.Task.Wait(Timeout);
        return _process.ExitCode;
    }

    /// <summary>Sends SIGUSR1 and asserts exit 0 with a PASS line and no FAIL line.</summary>
    public void SignalAndExpectPass()
    {
        Signal(SIGUSR1);
        int rc = WaitExit();
        string err = Stderr;
        Assert.True(rc == 0, $"exit {rc}, stderr:\n{err}");
        Assert.Contains("PASS", err);
        Assert.DoesNotContain("FAIL", err);
    }

    /// <summary>Fields of /proc/PID/status, value whitespace-trimmed.</summary>
    public Dictionary<string, string> ProcStatus()
    {
        var d = new Dictionary<string, string>();
        foreach (var line in File.ReadAllLines($"/proc/{Pid}/status"))
        {
            int colon = line.IndexOf(':');
            if (colon > 0)
                d[line[..colon]] = line[(colon + 1)..].Trim();
        }
        return d;
    }

    public void Dispose()
    {
        try
        {
            if (!_process.HasExited)
                _process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException)
        {
        }
        _process.Dispose();
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int kill(int pid, int sig);
}
