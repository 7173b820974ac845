using System.Text;
using Crisp.Compel;
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
        string comm = task.Leader.Core.ThreadCore?.Comm is { Length: > 0 } c ? c : tc.Comm;
        NameAndPersonality(task.Puppet.Remote, comm, tc.Personality);
        foreach (var thread in task.OtherThreads)
            NameAndPersonality(thread.Remote!, thread.Core.ThreadCore?.Comm is { Length: > 0 } name ? name : null, tc.Personality);
    }

    /// <summary>The thread's name (prctl(PR_SET_NAME) names the calling thread only) and personality (per thread too),
    /// in one batch: the personality is read along with the name's prctl and set only when it differs.</summary>
    private static void NameAndPersonality(RemoteTask thread, string? comm, uint personality)
    {
        var calls = new List<(string, RemoteCall)> { ("personality", new RemoteCall(Sysno.personality, 0xffffffff)) };
        if (comm is not null)
            calls.Add(("prctl(PR_SET_NAME)", new RemoteCall(Sysno.prctl, Prctl.PR_SET_NAME, (long)thread.PutOnScratch(CommBytes(comm)))));
        if (thread.CallAll(calls)[0] != personality)
            thread.Call("personality", Sysno.personality, personality);
    }

    private static byte[] CommBytes(string comm)
    {
        var bytes = new byte[16];   // TASK_COMM_LEN, NUL-terminated
        byte[] name = Encoding.UTF8.GetBytes(comm);
        name.AsSpan(0, Math.Min(name.Length, 15)).CopyTo(bytes);
        return bytes;
    }

    /// <summary>prctl(PR_SET_NAME) names the calling thread only: run it in that thread.</summary>
    public static void SetName(RemoteTask thread, int tid, string comm) =>
        thread.Call("prctl(PR_SET_NAME)", Sysno.prctl, Prctl.PR_SET_NAME, (long)thread.PutOnScratch(CommBytes(comm)));
}
