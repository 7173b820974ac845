using Crisp.Linux;

namespace Crisp.Resources.Files.Sockets;

/// <summary>Diag queries about a socket (netlink_diag, packet_diag) answer for the namespace they are asked in:
/// they are asked in the socket's own (SIOCGSKNS), which must be its task's, where the restore makes it again.</summary>
public static class SocketNamespace
{
    private const long SIOCGSKNS = 0x894C;

    public static T Run<T>(OpenFd fd, string what, Func<T> work)
    {
        using var ns = new UnixFd((int)RawSyscall.Call("ioctl(SIOCGSKNS)", Sysno.ioctl, fd.Copy.Fd, SIOCGSKNS));
        ulong? taskNs = Namespaces.NamespaceKind.Net.InodeOf(fd.Pid);
        if (taskNs is { } t && FdOps.Stat(ns.Fd).Ino != t)
            throw new CrispException($"{what} belongs to another network namespace than its task");
        return NetNamespaces.Run(ns, work);
    }
}
