using System.Runtime.ExceptionServices;
using Crisp.Linux;

namespace Crisp.Resources.Ipc;

/// <summary>Runs work on a fresh OS thread that first joins an IPC namespace (setns is per thread for IPC,
/// and allowed in a multithreaded process), so SysV calls and /proc/sys/kernel, /proc/sys/fs/mqueue and
/// /proc/sysvipc act on that namespace; the thread ends with the work, crisp's other threads never move.
/// A null namespace runs in crisp's own.</summary>
public static class IpcNamespaceThread
{
    private const int CLONE_NEWIPC = 0x08000000;

    public static T Run<T>(UnixFd? ns, Func<T> work) => Compel.ThrowawayThread.Run("crisp-ipcns", 1 << 20, () =>
    {
        if (ns is not null)
            RawSyscall.Call("setns(CLONE_NEWIPC)", Sysno.setns, ns.Fd, CLONE_NEWIPC);
        return work();
    });

    public static void Run(UnixFd? ns, Action work) => Run(ns, () => { work(); return 0; });

    /// <summary>Runs <paramref name="work"/> with this thread's effective uid/gid set to the given ones, so an
    /// object it creates gets them as its creator (cuid/cgid); raw syscalls change this thread only, and
    /// the real and saved ids stay root, so the capabilities come back with euid 0.</summary>
    public static T AsCreator<T>(uint uid, uint gid, Func<T> work)
    {
        RawSyscall.Call("setresgid", Sysno.setresgid, -1, gid, -1);
        try
        {
            RawSyscall.Call("setresuid", Sysno.setresuid, -1, uid, -1);
            try
            {
                return work();
            }
            finally
            {
                RawSyscall.Call("setresuid", Sysno.setresuid, -1, 0, -1);
            }
        }
        finally
        {
            RawSyscall.Call("setresgid", Sysno.setresgid, -1, 0, -1);
        }
    }
}
