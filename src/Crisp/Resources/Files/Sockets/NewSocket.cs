using Crisp.Images.Proto;
using Crisp.Linux;
using Crisp.Restore;

namespace Crisp.Resources.Files.Sockets;

/// <summary>The common end of making a socket at restore: the kind shapes it (bind, connect, options), then its
/// file status flags and SIGIO owner are set; on any failure crisp's fd is closed and a syscall error becomes
/// one line naming the socket.</summary>
public static class NewSocket
{
    public static UnixFd Shape(RestoreContext ctx, UnixFd sock, string what, uint flags, fown_entry? fown, Action<int> shape)
    {
        try
        {
            shape(sock.Fd);
            FdOps.SetStatusFlags(sock.Fd, (int)flags);
            try { Fown.Restore(ctx, sock.Fd, fown); }
            catch (SyscallException x) { ctx.Log.Warn($"{what}: owner not restored: {x.Message}"); }
            return sock;
        }
        catch (SyscallException x)
        {
            sock.Dispose();
            throw new CrispException($"{what}: {x.Message}");
        }
        catch
        {
            sock.Dispose();
            throw;
        }
    }
}
