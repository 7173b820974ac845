using Crisp.Linux.Proc;
using Crisp.Linux;

namespace Crisp.Resources.Namespaces;

/// <summary>Runs a piece of work on a throwaway thread of crisp that has joined a task's namespace by setns.
/// The kernel lets one thread of a multithreaded process join a uts, ipc or net namespace alone (not a mnt or
/// user one); the thread ends afterwards, so no other thread of crisp ever runs in the tree's namespace.</summary>
public static class NamespaceThread
{
    public static T Run<T>(int hostPid, NamespaceKind kind, Func<T> work)
    {
        if (kind == NamespaceKind.Mnt || kind == NamespaceKind.User)
            throw new InvalidOperationException($"a thread of a multithreaded process cannot join a {kind} namespace");
        using var ns = FileIo.Open(Procfs.Host.Path(hostPid, $"ns/{kind.Name}"), FileIo.O_RDONLY | FileIo.O_CLOEXEC);
        return Compel.ThrowawayThread.Run($"crisp-{kind.Name}ns", 256 * 1024, () =>
        {
            RawSyscall.Call($"setns({Procfs.Host.Path(hostPid, $"ns/{kind.Name}")})", Sysno.setns, ns.Fd, (long)kind.CloneFlag);
            return work();
        });
    }
}
