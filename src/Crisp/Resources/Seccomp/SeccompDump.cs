using Crisp.Compel;
using Crisp.Dump;
using Crisp.Images;
using Crisp.Images.Proto;
using Crisp.Linux;

namespace Crisp.Resources.Seccomp;

/// <summary>Each thread's seccomp filters, read with PTRACE_SECCOMP_GET_FILTER (program) and
/// PTRACE_SECCOMP_GET_METADATA (flags such as SECCOMP_FILTER_FLAG_LOG). The mode itself was recorded
/// by the seize (CoreDump copies it); threads in filter mode get the index of their newest filter.</summary>
public sealed class SeccompDump : IDumpStage
{
    private const int CAP_SYS_ADMIN = 21;

    public string Name => "seccomp";

    public void Dump(DumpContext ctx, DumpTask task)
    {
        var chains = ctx.Seccomp;
        foreach (var thread in task.Threads)
        {
            if (thread.Thread.SeccompMode != Linux.Seccomp.SECCOMP_MODE_FILTER)
                continue;
            RequireCapSysAdmin(task.Pid, thread.Tid);
            var chain = ReadChain(thread.Thread);
            thread.Core.ThreadCore.SeccompFilter = (uint)chains.Add(chain);
            ctx.Log.Debug($"seccomp: thread {thread.Tid} has {chain.Count} filter(s)");
        }
    }

    public void Finish(DumpContext ctx)
    {
        var chains = ctx.Seccomp;
        if (chains.Filters.Count == 0)
            return;
        var entry = new seccomp_entry();
        entry.SeccompFilters.AddRange(chains.Filters);
        ctx.Images.Write(new ImageFile(ImageKind.Seccomp, null), entry);
    }

    /// <summary>The kernel numbers filters from the oldest (index 0) on; ENOENT ends the chain.</summary>
    private static List<(byte[] Program, uint Flags)> ReadChain(SeizedThread thread)
    {
        var chain = new List<(byte[], uint)>();
        for (int i = 0; ; i++)
        {
            byte[]? program = thread.SeccompFilter(i);
            if (program is null)
                break;
            chain.Add((program, (uint)thread.SeccompFilterFlags(i)));
        }
        if (chain.Count == 0)
            throw new CrispException($"seccomp: thread {thread.Tid} is in filter mode but no filter could be read");
        return chain;
    }

    private static void RequireCapSysAdmin(int pid, int tid)
    {
        if ((Capabilities.Get().Effective & (1UL << CAP_SYS_ADMIN)) == 0)
            throw new CrispException($"task {pid} (thread {tid}) has seccomp filters: reading them (PTRACE_SECCOMP_GET_FILTER) needs CAP_SYS_ADMIN, which crisp does not have");
    }
}
