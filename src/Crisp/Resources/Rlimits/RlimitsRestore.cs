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
        for (int res = 0; res < saved.Rlimits.Count && res < Linux.Rlimits.RLIM_NLIMITS; res++)
        {
            var want = saved.Rlimits[res];
            var buffer = new byte[32];   // new limit, then the old one
            BinaryPrimitives.WriteUInt64LittleEndian(buffer, want.Cur);
            BinaryPrimitives.WriteUInt64LittleEndian(buffer.AsSpan(8), want.Max);
            ulong at = remote.PutOnScratch(buffer);
            long r = remote.Syscall(Sysno.prlimit64, 0, res, (long)at, (long)at + 16);
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
