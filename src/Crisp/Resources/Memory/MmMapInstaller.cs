using System.Runtime.InteropServices;
using Crisp.Compel.Puppets;
using Crisp.Images.Proto;
using Crisp.Linux;
using Crisp.Restore;

namespace Crisp.Resources.Memory;

/// <summary>PR_SET_MM_MAP in the puppet: code/data/brk/stack/arg/env bounds, the saved auxv, and the exe
/// file, so /proc/PID/exe, cmdline, environ and the [heap]/[stack] names come out as they were.</summary>
public static class MmMapInstaller
{
    public static unsafe void Install(RestoreTask task, mm_entry mm, IReadOnlyDictionary<uint, string> files)
    {
        int exeFd = -1;
        if (mm.ExeFileId != 0)
        {
            if (!files.TryGetValue(mm.ExeFileId, out var exe))
                throw new CrispException($"task {task.Pid}: exe file id {mm.ExeFileId} is in neither files.img nor reg-files.img");
            exeFd = PuppetPaths.Open(task, exe, FileIo.O_RDONLY);
        }
        try
        {
            var map = new PrctlMmMap
            {
                StartCode = mm.MmStartCode, EndCode = mm.MmEndCode, StartData = mm.MmStartData, EndData = mm.MmEndData,
                StartBrk = mm.MmStartBrk, Brk = mm.MmBrk, StartStack = mm.MmStartStack,
                ArgStart = mm.MmArgStart, ArgEnd = mm.MmArgEnd, EnvStart = mm.MmEnvStart, EnvEnd = mm.MmEnvEnd,
                ExeFd = unchecked((uint)exeFd),
            };
            // The struct, then the auxv right after it, on the puppet's 4 KiB data page.
            var auxv = mm.MmSavedAuxv.ToArray();
            int size = sizeof(PrctlMmMap) + auxv.Length * sizeof(ulong);
            if (size > (int)PuppetElf.PageSize)
                throw new CrispException($"task {task.Pid}: saved auxv of {auxv.Length} words is too long");
            map.Auxv = PuppetElf.DataAddress + (ulong)sizeof(PrctlMmMap);
            map.AuxvSize = (uint)(auxv.Length * sizeof(ulong));
            var buffer = new byte[size];
            MemoryMarshal.Write(buffer, in map);
            MemoryMarshal.AsBytes(auxv.AsSpan()).CopyTo(buffer.AsSpan(sizeof(PrctlMmMap)));
            ulong at = task.Puppet.Remote.PutOnScratch(buffer);
            // The exe's fd is closed in the same stop (a remote call is a ptrace round trip), whatever prctl returned.
            var calls = new List<Compel.RemoteCall> { new(Sysno.prctl, Prctl.PR_SET_MM, Prctl.PR_SET_MM_MAP, (long)at, sizeof(PrctlMmMap)) };
            if (exeFd >= 0)
                calls.Add(new(Sysno.close, exeFd));
            exeFd = -1;
            Compel.RemoteTask.ThrowIfFailed(task.Puppet.Remote.Syscalls(calls)[0], $"prctl(PR_SET_MM_MAP) in thread {task.Puppet.Pid}");
        }
        finally
        {
            if (exeFd >= 0)
                task.Puppet.Remote.Syscall(Sysno.close, exeFd);
        }
    }
}
