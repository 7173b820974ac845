using Crisp.Images.Proto;
using Crisp.Linux;
using Crisp.Restore;

namespace Crisp.Resources.Files;

/// <summary>The last steps every re-created description shares: its own contents (marks, watches, counter,
/// timer…), then the dumped status flags and owner — and on any failure the new fd is closed, not leaked.</summary>
public static class NewDescription
{
    public static UnixFd Finish(RestoreContext ctx, UnixFd fd, uint statusFlags, fown_entry? owner, Action<int>? fill = null)
    {
        try
        {
            fill?.Invoke(fd.Fd);
            FdOps.SetStatusFlags(fd.Fd, (int)statusFlags);
            Fown.Restore(ctx, fd.Fd, owner);
            return fd;
        }
        catch
        {
            fd.Dispose();
            throw;
        }
    }
}
