using Crisp.Images.Proto;
using Crisp.Linux;
using Crisp.Restore;

namespace Crisp.Resources.Files;

/// <summary>--inherit-fd fd[N]:KEY (CRIU's): a file of the images that was shared with something outside the
/// dumped tree — typically a container's stdio pipe held by its runtime — is not re-created; the restored
/// tasks get crisp's own fd N (a description the caller passed in) wherever they had it. KEY names the
/// file as CRIU does: `pipe:[INODE]`, `socket:[INODE]`, or a regular file's path.</summary>
public static class InheritedFds
{
    /// <summary>The description to use for <paramref name="entry"/>: a duplicate of the inherited fd whose
    /// key matches, or null to re-create it as dumped.</summary>
    public static UnixFd? For(RestoreContext ctx, file_entry entry)
    {
        if (ctx.Options.InheritFds.Count == 0 || Key(entry) is not { } key)
            return null;
        foreach (var (fd, wanted) in ctx.Options.InheritFds)
        {
            if (wanted != key)
                continue;
            try
            {
                var dup = new UnixFd(FdOps.Fcntl(fd, FdOps.F_DUPFD_CLOEXEC, 0));
                ctx.Log.Info($"file {entry.Id} ({key}): the inherited fd {fd}");
                return dup;
            }
            catch (SyscallException e)
            {
                throw new CrispException($"--inherit-fd fd[{fd}]:{key}: fd {fd} is not open in crisp ({e.Message})");
            }
        }
        return null;
    }

    /// <summary>CRIU's name for a file that may be inherited; null for kinds that never are.</summary>
    public static string? Key(file_entry entry) => entry.Type switch
    {
        fd_types.Pipe when entry.Pipe is { } p => $"pipe:[{p.PipeId}]",
        fd_types.Unixsk when entry.Usk is { } u => $"socket:[{u.Ino}]",
        fd_types.Inetsk when entry.Isk is { } i => $"socket:[{i.Ino}]",
        fd_types.Netlinksk when entry.Nlsk is { } n => $"socket:[{n.Ino}]",
        fd_types.Reg when entry.Reg is { } r => r.Name,
        _ => null,
    };
}
