using System.Text;
using Crisp.Linux;
using Crisp.Restore;

namespace Crisp.Resources.Core;

/// <summary>Identity of a task: its name (comm) and personality (the kernel keeps it per thread and the
/// threads exist by now, so each one is set; the image has one for the process).</summary>
public sealed class CoreRestore : IRestoreStage
{
    public string Name => "core";

    public void Restore(RestoreContext ctx, RestoreTask task)
    {
        var tc = task.TaskCore;
        SetPersonality(task.Puppet.Remote, task.Pid, tc.Personality);
        foreach (var thread in task.OtherThreads)
            SetPersonality(thread.Remote!, thread.Tid, tc.Personality);
        string comm = task.Leader.Core.ThreadCore?.Comm is { Length: > 0 } c ? c : tc.Comm;
        SetName(task.Puppet.Remote, task.Pid, comm);
        foreach (var thread in task.OtherThreads)
            if (thread.Core.ThreadCore?.Comm is { Length: > 0 } name)
                SetName(thread.Remote!, thread.Tid, name);
    }

    private static void SetPersonality(Compel.RemoteTask thread, int tid, uint personality)
    {
        if (thread.Call($"personality in {tid}", Sysno.personality, 0xffffffff) != personality)
            thread.Call($"personality in {tid}", Sysno.personality, personality);
    }

    /// <summary>prctl(PR_SET_NAME) names the calling thread only: run it in that thread.</summary>
    public static void SetName(Compel.RemoteTask thread, int tid, string comm)
    {
        var bytes = new byte[16];   // TASK_COMM_LEN, NUL-terminated
        byte[] name = Encoding.UTF8.GetBytes(comm);
        name.AsSpan(0, Math.Min(name.Length, 15)).CopyTo(bytes);
        ulong at = thread.PutOnScratch(bytes);
        thread.Call("prctl(PR_SET_NAME)", Sysno.prctl, Prctl.PR_SET_NAME, (long)at);
    }
}
