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
        var bytes = new byte[16];   // TASK_COMM_LEN, NUL-terminated
        byte[] name = Encoding.UTF8.GetBytes(comm);
        name.AsSpan(0, Math.Min(name.Length, 15)).CopyTo(bytes);
        ulong at = task.Puppet.Remote.PutOnScratch(bytes);
        task.Call("prctl(PR_SET_NAME)", Sysno.prctl, Prctl.PR_SET_NAME, (long)at);
    }
}
