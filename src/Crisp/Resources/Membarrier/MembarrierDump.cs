using Crisp.Dump;
using Crisp.Linux;

namespace Crisp.Resources.Membarrier;

/// <summary>membarrier(2) registrations of a process (task_core_entry.membarrier_registration_mask, as in
/// CRIU). They belong to the mm and are lost across a checkpoint; a runtime that registered
/// (.NET registers MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED at start and aborts if a later
/// MEMBARRIER_CMD_PRIVATE_EXPEDITED fails) must find them registered again.</summary>
public sealed class MembarrierDump : IDumpStage
{
    public string Name => "membarrier";

    public void Dump(DumpContext ctx, DumpTask task)
    {
        long mask = task.Remote.Syscall(Sysno.membarrier, MembarrierCmds.GetRegistrations, 0, 0);
        if (mask < 0)
            mask = Probe(task);   // before Linux 6.3: issue each private barrier; success means registered
        if (mask != 0)
        {
            task.TaskCore.MembarrierRegistrationMask = (uint)mask;
            ctx.Log.Debug($"task {task.Pid}: membarrier registrations 0x{mask:x}");
        }
    }

    private static long Probe(DumpTask task)
    {
        long mask = 0;
        foreach (int cmd in (int[])[MembarrierCmds.PrivateExpedited, MembarrierCmds.PrivateExpeditedSyncCore, MembarrierCmds.PrivateExpeditedRseq])
            if (task.Remote.Syscall(Sysno.membarrier, cmd, 0, 0) == 0)
                mask |= (long)cmd << 1;   // MEMBARRIER_CMD_REGISTER_x == MEMBARRIER_CMD_x << 1
        return mask;
    }
}

/// <summary>membarrier(2) command bits (include/uapi/linux/membarrier.h).</summary>
internal static class MembarrierCmds
{
    public const int PrivateExpedited = 1 << 3, PrivateExpeditedSyncCore = 1 << 5, PrivateExpeditedRseq = 1 << 7,
        GetRegistrations = 1 << 9;
}
