using Crisp.Compel;
using Crisp.Dump;
using Crisp.Linux;

namespace Crisp.Resources.TaskState;

/// <summary>Remote syscalls in one particular thread of a dumped task: per-thread state (altstack,
/// pdeath signal, securebits) is only answered for the calling thread. The leader reuses the task's
/// open <see cref="DumpTask.Remote"/>; another thread's RemoteTask is opened once per dump and kept by the task
/// (<see cref="DumpTask.RemoteOf"/>).</summary>
public sealed class ThreadRemote : IDisposable
{
    public RemoteTask Remote { get; }
    public int Tid { get; }

    public ThreadRemote(DumpContext ctx, DumpTask task, DumpThread thread)
    {
        Tid = thread.Tid;
        Remote = task.RemoteOf(thread);
    }

    public long Call(string name, long nr, long a1 = 0, long a2 = 0, long a3 = 0, long a4 = 0)
        => Remote.Call(name, nr, a1, a2, a3, a4);

    /// <summary>Runs <paramref name="call"/> with a scratch address where a getter stores
    /// <paramref name="size"/> bytes, and returns those bytes.</summary>
    public byte[] CallForBytes(int size, Func<ulong, long> call)
    {
        ulong at = Remote.PutOnScratch(new byte[size]);
        call(at);
        var buffer = new byte[size];
        Remote.ReadMemory(at, buffer);
        return buffer;
    }

    /// <summary>Nothing: the task keeps its threads' remotes open until it is let go (<see cref="DumpTask.RemoteOf"/>).</summary>
    public void Dispose()
    {
    }
}
