using Crisp.Linux;
using Crisp.Restore;

namespace Crisp.Resources.Membarrier;

/// <summary>Registers the process for every membarrier command it was registered for (each bit of the
/// saved mask is a MEMBARRIER_CMD_REGISTER_* command; the registration is per mm, so once per process).</summary>
public sealed class MembarrierRestore : IRestoreStage
{
    public string Name => "membarrier";

    public void Restore(RestoreContext ctx, RestoreTask task)
    {
        if (!task.TaskCore.HasMembarrierRegistrationMask)
            return;
        uint mask = task.TaskCore.MembarrierRegistrationMask;
        for (int bit = 0; bit < 32; bit++)
            if ((mask & (1u << bit)) != 0)
                task.Call($"membarrier(register 0x{1u << bit:x})", Sysno.membarrier, 1L << bit, 0, 0);
    }
}
