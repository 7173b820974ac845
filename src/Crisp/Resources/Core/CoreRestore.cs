using System.Text;
using Crisp.Linux;
using Crisp.Restore;

namespace Crisp.Resources.Core;

/// <summary>Identity of a task: its name (comm) and personality.</summary>
public sealed class CoreRestore : IRestoreStage
{
    public string Name => "core";

    public void Restore(RestoreContext ctx, RestoreTask task)
    {
        var tc = task.TaskCore;
        long current = task.Call("personality", Sysno.personality, 0xffffffff);
        if (current != tc.Personality)
            task.Call("personality", Sysno.personality, tc.Personality);
        string comm = task.Leader.Core.ThreadCore?.Comm is { Length: > 0 } c ? c : tc.Comm;
        SetName(task.Puppet.Remote, task.Pid, comm);
        foreach (var thread in task.OtherThreads)
            if (thread.Core.ThreadCore?.Comm is { Length: > 0 } name)
                SetName(thread.Remote!, thread.Tid, name);
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
