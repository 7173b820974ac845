using System.Diagnostics;
using System.Text;
using Crisp.Linux;

namespace Crisp.Plugins.Cuda;

/// <summary>NVIDIA's cuda-checkpoint utility, found on PATH and run with its own command line:
/// <c>-h</c>, <c>--get-restore-tid --pid P</c>, <c>--get-state --pid P</c>,
/// <c>--action lock|checkpoint|restore|unlock --pid P [--timeout MS]</c>.</summary>
public sealed class CudaCheckpointTool(string path, Log log)
{
    public const string FileName = "cuda-checkpoint";

    public string Path { get; } = path;

    /// <summary>The first executable cuda-checkpoint on PATH, or null.</summary>
    public static string? Find()
    {
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            string candidate = System.IO.Path.Combine(dir, FileName);
            if (File.Exists(candidate) && (File.GetUnixFileMode(candidate) & (UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute)) != 0)
                return candidate;
        }
        return null;
    }

    /// <summary>Whether this version drives devices by --action (driver r555 and later); older ones toggle only.</summary>
    public bool SupportsActions() => Run(TimeSpan.FromSeconds(30), "-h").Output.Contains("--action");

    /// <summary>TID of the task's CUDA restore thread; null when the task is not a CUDA process.</summary>
    public int? RestoreTid(int pid)
    {
        var (code, output) = Run(TimeSpan.FromSeconds(30), "--get-restore-tid", "--pid", pid.ToString());
        return code == 0 && int.TryParse(output.Trim(), out int tid) && tid > 0 ? tid : null;
    }

    public CudaTaskState State(int pid)
    {
        var (code, output) = Run(TimeSpan.FromSeconds(30), "--get-state", "--pid", pid.ToString());
        if (code != 0)
            throw new CrispException($"{FileName} --get-state --pid {pid} failed (exit {code}): {FirstLine(output)}");
        return output.Trim() switch
        {
            "running" => CudaTaskState.Running,
            "locked" => CudaTaskState.Locked,
            "checkpointed" => CudaTaskState.Checkpointed,
            "failed" => CudaTaskState.Failed,
            var s => throw new CrispException($"{FileName} --get-state --pid {pid}: unknown state '{FirstLine(s)}'"),
        };
    }

    /// <summary>Runs one action; throws with the tool's first line of output when it fails.</summary>
    public void Action(int pid, string action, TimeSpan? timeout = null)
    {
        var args = new List<string> { "--action", action, "--pid", pid.ToString() };
        if (timeout is { } t)
            args.AddRange(["--timeout", ((long)t.TotalMilliseconds).ToString()]);
        var (code, output) = Run((timeout ?? TimeSpan.Zero) + TimeSpan.FromSeconds(60), [.. args]);
        if (code != 0)
            throw new CrispException($"{FileName} {string.Join(' ', args)} failed (exit {code}): {FirstLine(output)}");
    }

    /// <summary>Runs the tool with stdout and stderr into a memfd (posix_spawn: no .NET child reaper involved),
    /// killing it if it outlives <paramref name="limit"/>.</summary>
    private (int Code, string Output) Run(TimeSpan limit, params string[] args)
    {
        using var output = Memfd.Create("cuda-checkpoint-output");
        int pid = Spawn.Start(Path, [FileName, .. args], new SpawnOptions
        {
            Fds = [(output.Fd, 1), (output.Fd, 2)],
            Opens = [(0, "/dev/null", FileIo.O_RDONLY, 0)],
        });
        var clock = Stopwatch.StartNew();
        WaitStatus? status;
        while ((status = Spawn.TryReap(pid)) is null)
        {
            if (clock.Elapsed > limit)
            {
                Signals.TryKill(pid);
                Spawn.Reap(pid);
                throw new CrispException($"{FileName} {string.Join(' ', args)} did not finish within {limit.TotalSeconds:F0} s");
            }
            Thread.Sleep(clock.ElapsedMilliseconds < 100 ? 1 : 10);
        }
        long size = FileIo.Seek(output.Fd, 0, FileIo.SEEK_END);
        var buffer = new byte[Math.Min(size, 64 * 1024)];
        FileIo.PReadFully(output.Fd, buffer, 0);
        string text = Encoding.UTF8.GetString(buffer);
        int code = status.Value.Exited ? status.Value.ExitCode : 128 + status.Value.TermSignal;
        log.Debug($"{FileName} {string.Join(' ', args)} -> {code}: {FirstLine(text)}");
        return (code, text);
    }

    private static string FirstLine(string s) => s.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).FirstOrDefault() ?? "(no output)";
}

/// <summary>What cuda-checkpoint --get-state reports for a process.</summary>
public enum CudaTaskState
{
    Running,
    Locked,
    Checkpointed,
    Failed,
}
