using System.Buffers.Binary;
using Crisp.Linux;
using Crisp.Restore;

namespace Crisp.Resources.Rlimits;

/// <summary>Sets each limit from inside the puppet (prlimit64(0, …)): setting another task's limits
/// needs CAP_SYS_RESOURCE, which crisp may not have. Without it a hard limit can only be lowered,
/// so a saved hard limit above the puppet's (inherited from crisp) is a clear error.</summary>
public sealed class RlimitsRestore : IRestoreStage
{
    public string Name => "rlimits";

    public void Restore(RestoreContext ctx, RestoreTask task)
    {
        if (task.TaskCore.Rlimits is not { } saved)
            return;
        var remote = task.Puppet.Remote;
        // Every limit in one batch: all the new/old pairs on the scratch data, one prlimit64 each.
        int count = Math.Min(saved.Rlimits.Count, Linux.Rlimits.RLIM_NLIMITS);
        var buffer = new byte[32 * count];   // per limit: the new one, then room for the old one
        for (int res = 0; res < count; res++)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(buffer.AsSpan(32 * res), saved.Rlimits[res].Cur);
            BinaryPrimitives.WriteUInt64LittleEndian(buffer.AsSpan(32 * res + 8), saved.Rlimits[res].Max);
        }
        ulong at = remote.PutOnScratch(buffer);
        var results = remote.Syscalls([.. Enumerable.Range(0, count).Select(res =>
            new Compel.RemoteCall(Sysno.prlimit64, 0, res, (long)at + 32 * res, (long)at + 32 * res + 16))]);
        for (int res = 0; res < count; res++)
        {
            var want = saved.Rlimits[res];
            long r = results[res];
            if (r == 0)
                continue;
            if (r == -Errnos.EPERM)
            {
                var now = Linux.Proc.ProcLimits.ToRlimits(Linux.Proc.ProcLimits.Read(task.HostPid))[res];
                throw new CrispException(
                    $"task {task.Pid}: cannot restore {RlimitNames.Of(res)} (soft {Show(want.Cur)}, hard {Show(want.Max)}): " +
                    $"the hard limit here is {Show(now.Max)} and raising it needs CAP_SYS_RESOURCE" +
                    (res == Linux.Rlimits.RLIMIT_NOFILE ? " (or it is above fs.nr_open)" : ""));
            }
            throw new SyscallException($"prlimit64({RlimitNames.Of(res)}) in task {task.Pid}", (int)-r);
        }
    }

    private static string Show(ulong v) => v == Linux.Rlimits.RLIM_INFINITY ? "unlimited" : v.ToString(System.Globalization.CultureInfo.InvariantCulture);
}
