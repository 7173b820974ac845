using Crisp.Linux;
using Crisp.Linux.Proc;

namespace Crisp.Scripts;

/// <summary>CRIU's --action-script hook points (criu/action-scripts.c); the names are what the script
/// sees in CRTOOLS_SCRIPT_ACTION.</summary>
public enum ScriptAction
{
    PreDump, PostDump, PreRestore, PostRestore, NetworkLock, NetworkUnlock,
    SetupNamespaces, PostSetupNamespaces, PreResume, PostResume, StatusReady,
}

/// <summary>Tells someone else about an action point and waits for the answer: CRIU's RPC NOTIFY (criu_notify
/// with the script name, and the root's pid for setup-namespaces and post-restore), acked by the RPC client.</summary>
public interface IActionNotifier
{
    /// <summary>Null when the other side acked; else why not (a refusal, a closed socket, no answer in time).</summary>
    string? Notify(string action, int? initPid);

    /// <summary>A notify carrying an fd (CRIU's "orphan-pts-master": the new master of the tree's terminal).</summary>
    string? NotifyWithFd(string action, int fd) => $"{action}: this caller takes no fds";
}

/// <summary>Runs the user's --action-script programs at CRIU's call points, with CRIU's environment:
/// CRTOOLS_SCRIPT_ACTION, CRTOOLS_IMAGE_DIR (/proc/&lt;crisp&gt;/fd/N of the open images directory) and,
/// once the root task exists, CRTOOLS_INIT_PID. Scripts run in the order given; each is run even if an
/// earlier one failed, and the result is the first non-zero exit code (0 when all succeeded).</summary>
public sealed class ActionScripts : IDisposable
{
    private readonly IReadOnlyList<string> _paths;
    private readonly Log _log;
    private UnixFd? _imagesDir;

    public ActionScripts(IReadOnlyList<string> paths, string imagesDir, Log log)
    {
        _paths = paths;
        _log = log;
        ImagesDir = imagesDir;
    }

    /// <summary>No scripts (a fresh instance: InitPid is set on it).</summary>
    public static ActionScripts None => new([], ".", Log.Null);

    public string ImagesDir { get; }

    /// <summary>Where the scripts run (and a relative script path is found): the run's work dir; null: crisp's own.</summary>
    public WorkDirectory? WorkDir { get; init; }

    /// <summary>Told first at every action point (CRIU's RPC notify_scripts); the scripts run only when it acked.</summary>
    public IActionNotifier? Notifier { get; init; }

    /// <summary>Why the last failing notify failed (for the error that aborts the operation).</summary>
    private string? _notifyFailure;

    /// <summary>The root task's PID once it exists (the dumpee; on restore the restored root).</summary>
    public int? InitPid { get; set; }

    /// <summary>No script and no RPC notifier: running an action does nothing.</summary>
    public bool IsEmpty => _paths.Count == 0 && Notifier is null;

    public static string Name(ScriptAction action) => action switch
    {
        ScriptAction.PreDump => "pre-dump",
        ScriptAction.PostDump => "post-dump",
        ScriptAction.PreRestore => "pre-restore",
        ScriptAction.PostRestore => "post-restore",
        ScriptAction.NetworkLock => "network-lock",
        ScriptAction.NetworkUnlock => "network-unlock",
        ScriptAction.SetupNamespaces => "setup-namespaces",
        ScriptAction.PostSetupNamespaces => "post-setup-namespaces",
        ScriptAction.PreResume => "pre-resume",
        ScriptAction.PostResume => "post-resume",
        ScriptAction.StatusReady => "status-ready",
        _ => throw new ArgumentOutOfRangeException(nameof(action)),
    };

    /// <summary>Runs every script for <paramref name="action"/>; returns 0 or the first failing exit code
    /// (128 + signal for a script killed by a signal).</summary>
    public int Run(ScriptAction action)
    {
        string name = Name(action);
        _notifyFailure = null;
        if (Notifier is not null)
        {
            // As CRIU: the root's pid goes with the two actions that need it; a failed notify skips the scripts.
            int? notifyPid = action is ScriptAction.SetupNamespaces or ScriptAction.PostRestore ? InitPid : null;
            _log.Debug($"Notifying {name} over RPC");
            if (Notifier.Notify(name, notifyPid) is { } failure)
            {
                _log.Error($"RPC notify {name}: {failure}");
                _notifyFailure = failure;
                return 1;
            }
        }
        if (_paths.Count == 0)
            return 0;
        _log.Debug($"Running {name} scripts");
        var env = Environment.GetEnvironmentVariables().Keys.Cast<string>()
            .Where(k => !k.StartsWith("CRTOOLS_", StringComparison.Ordinal))
            .Select(k => $"{k}={Environment.GetEnvironmentVariable(k)}").ToList();
        env.Add($"CRTOOLS_SCRIPT_ACTION={name}");
        env.Add($"CRTOOLS_IMAGE_DIR={Procfs.Host.Path(ProcessIds.Pid, $"fd/{ImagesDirFd()}")}");
        if (InitPid is int pid)
            env.Add($"CRTOOLS_INIT_PID={pid}");
        int result = 0;
        foreach (string path in _paths)
        {
            _log.Debug($"\t[{path}]");
            int code;
            try
            {
                int child = Spawn.Start(path, [path], new SpawnOptions { Environment = env, WorkingDirectoryFd = WorkDir?.Handle.Fd ?? -1 });
                var status = Spawn.Reap(child);
                code = status.Signaled ? 128 + status.TermSignal : status.ExitCode;
            }
            catch (SyscallException e)
            {
                _log.Error($"Script {path} could not be started: {e.Message}");
                code = 1;
            }
            if (code != 0)
            {
                _log.Error($"Script {path} exited with {code}");
                if (result == 0)
                    result = code;
            }
        }
        return result;
    }

    /// <summary>Runs the scripts and turns a failure into an error that aborts the operation.</summary>
    public void RunOrThrow(ScriptAction action)
    {
        int code = Run(action);
        if (code != 0)
            throw new ActionScriptException(Name(action), code, _notifyFailure);
    }

    /// <summary>An O_PATH descriptor of the images directory kept open while crisp runs, as CRIU
    /// keeps its image-dir service fd (scripts reach it through /proc/&lt;crisp&gt;/fd).</summary>
    private int ImagesDirFd()
    {
        _imagesDir ??= FileIo.Open(ImagesDir, FileIo.O_PATH | FileIo.O_DIRECTORY);
        return _imagesDir.Fd;
    }

    public void Dispose() => _imagesDir?.Dispose();
}

/// <summary>An action script failed; <see cref="ExitCode"/> is its exit status, which a failed
/// post-dump hands back as crisp's own (as CRIU's cr_dump_finish does).</summary>
public sealed class ActionScriptException(string action, int exitCode, string? notifyFailure = null)
    : CrispException(notifyFailure is null ? $"{action} script failed with exit code {exitCode}" : $"{action} notify failed: {notifyFailure}")
{
    public string Action { get; } = action;
    public int ExitCode { get; } = exitCode;
}
