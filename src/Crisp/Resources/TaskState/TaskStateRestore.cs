using Crisp.Compel;
using Crisp.Images.Proto;
using Crisp.Linux;
using Crisp.Linux.Proc;
using Crisp.Restore;

namespace Crisp.Resources.TaskState;

/// <summary>Child-subreaper flag, oom_score_adj and loginuid of the process; robust futex list, parent-death
/// signal and timer slack of every thread (<see cref="RestoreThread"/>, run in each thread).</summary>
public sealed class TaskStateRestore : IRestoreStage
{
    public string Name => "taskstate";

    public void Restore(RestoreContext ctx, RestoreTask task)
    {
        if (task.TaskCore.HasChildSubreaper && task.TaskCore.ChildSubreaper)
            task.Call("prctl(PR_SET_CHILD_SUBREAPER)", Sysno.prctl, Prctl.PR_SET_CHILD_SUBREAPER, 1);
        foreach (var (remote, tid, tc) in task.ThreadCores)
            RestoreThread(remote, tid, tc);
        if (task.TaskCore.HasOomScoreAdj)
            RestoreOomScoreAdj(ctx, task, task.TaskCore.OomScoreAdj);
        if (task.TaskCore.HasLoginuid)
            RestoreLoginuid(ctx, task, task.TaskCore.Loginuid);
    }

    /// <summary>Written from crisp. Lowering it below what the puppet inherited needs CAP_SYS_RESOURCE,
    /// which root lacks on some hosts: then the value is not restored and the log says so.</summary>
    private static void RestoreOomScoreAdj(RestoreContext ctx, RestoreTask task, int value)
    {
        if ((int)ProcFiles.Dec(Procfs.Host.ReadText(task.HostPid, "oom_score_adj").Trim()) == value)
            return;
        try
        {
            File.WriteAllText(Procfs.Host.Path(task.HostPid, "oom_score_adj"), value.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }
        catch (Exception e) when (e is UnauthorizedAccessException or IOException)
        {
            ctx.Log.Warn($"task {task.Pid}: oom_score_adj {value} not restored ({e.Message}); it stays at the puppet's");
        }
    }

    /// <summary>The kernel takes a loginuid only from the task itself (and with CAP_AUDIT_CONTROL, once
    /// unless unlocked): written by the puppet into its own /proc/self/loginuid, as CRIU does.</summary>
    private static void RestoreLoginuid(RestoreContext ctx, RestoreTask task, uint loginuid)
    {
        if (ProcFiles.UDec(Procfs.Host.ReadText(task.HostPid, "loginuid").Trim()) == loginuid)
            return;
        var remote = task.Puppet.Remote;
        byte[] text = System.Text.Encoding.ASCII.GetBytes(loginuid.ToString(System.Globalization.CultureInfo.InvariantCulture));
        byte[] path = System.Text.Encoding.ASCII.GetBytes("/proc/self/loginuid\0");
        byte[] buffer = [.. path, .. text];   // the path, then the number to write, on one scratch page
        ulong at = remote.PutOnScratch(buffer);
        long fd = remote.Syscall(Sysno.openat, FileIo.AT_FDCWD, (long)at, FileIo.O_WRONLY | FileIo.O_CLOEXEC);
        long written = fd < 0 ? fd : remote.Syscall(Sysno.write, fd, (long)at + path.Length, text.Length);
        if (fd >= 0)
            remote.Syscall(Sysno.close, fd);
        if (written < 0)
            ctx.Log.Warn($"task {task.Pid}: loginuid {loginuid} not restored (errno {-written}); it stays at the puppet's");
    }

    /// <summary>Runs in the thread itself (each call acts on the calling thread only), as one batch.</summary>
    public static void RestoreThread(RemoteTask thread, int tid, thread_core_entry tc)
    {
        var calls = new List<(string, RemoteCall)>(3);
        if (tc.FutexRla != 0)
            calls.Add(($"set_robust_list(0x{tc.FutexRla:x}, {tc.FutexRlaLen})", new RemoteCall(Sysno.set_robust_list, (long)tc.FutexRla, tc.FutexRlaLen)));
        if (tc.HasTimerSlackNs && tc.TimerSlackNs != 0)
            calls.Add(($"prctl(PR_SET_TIMERSLACK, {tc.TimerSlackNs})", new RemoteCall(Sysno.prctl, Prctl.PR_SET_TIMERSLACK, (long)tc.TimerSlackNs)));
        if (tc.HasPdeathSig && tc.PdeathSig != 0)
            calls.Add(($"prctl(PR_SET_PDEATHSIG, {tc.PdeathSig})", new RemoteCall(Sysno.prctl, Prctl.PR_SET_PDEATHSIG, tc.PdeathSig)));
        thread.CallAll(calls);
    }

}
