using Crisp.Dump;
using Crisp.Images.Proto;
using Crisp.Linux;
using Crisp.Restore;

namespace Crisp.Resources.Files.Regular;

/// <summary>Files opened by path: regular files, directories and (non-tty) character devices such as
/// /dev/null — CRIU's REG kind (files-reg.c). Restored by opening the same path with the same flags.</summary>
public sealed class RegularFile : IFileKind
{
    public fd_types Type => fd_types.Reg;

    /// <summary>A path that still names the file (memfds, ghosts and terminals are claimed before this kind is asked).</summary>
    public bool Claims(OpenFd fd) =>
        fd.Target.StartsWith('/')
        && !fd.Target.EndsWith(" (deleted)", StringComparison.Ordinal)
        && !FileKinds.IsMqueue(fd)
        && (fd.Stat.Type is FileStat.S_IFREG or FileStat.S_IFDIR or FileStat.S_IFCHR
            || (fd.Flags & FileIo.O_PATH) != 0);   // O_PATH: any file type, nothing but the path to keep

    public file_entry Dump(DumpContext ctx, uint id, OpenFd fd)
    {
        ctx.Files.TreeMounts.Check(ctx, fd);
        var reg = new reg_file_entry
        {
            Id = id,
            Flags = (uint)fd.Flags,
            Pos = (ulong)fd.Info.Pos,
            Fown = (fd.Flags & FileIo.O_PATH) != 0 ? Fown.None() : Fown.Of(fd),   // fcntl(F_GETOWN_EX) is EBADF on O_PATH
            Name = fd.Target,
            MntId = fd.Info.MntId,
            Mode = fd.Stat.Mode,
        };
        // Only a regular file's size is recorded: CRIU's restore checks any size given (a directory's too).
        if (fd.Stat.Type == FileStat.S_IFREG)
            reg.Size = (ulong)fd.Stat.Size;
        return new file_entry { Type = Type, Id = id, Reg = reg };
    }

    /// <summary>An entry for a path crisp itself names (cwd, root): opened O_RDONLY|O_DIRECTORY on restore.</summary>
    public static file_entry ForDirectory(uint id, string path, uint mode) => new()
    {
        Type = fd_types.Reg,
        Id = id,
        Reg = new reg_file_entry
        {
            Id = id,
            Flags = FileIo.O_RDONLY | FileIo.O_DIRECTORY,
            Pos = 0,
            Fown = Fown.None(),
            Name = path,
            Mode = mode,
        },
    };

    /// <summary>A file under /proc/PID of one of the tree's own tasks or threads (a task reading its own or a
    /// child's status) can only be opened once the tree exists.</summary>
    public OpenTiming Timing(RestoreContext ctx, file_entry entry) => NamesTreeTask(ctx, entry) ? OpenTiming.Late : OpenTiming.Early;

    private static bool NamesTreeTask(RestoreContext ctx, file_entry entry)
    {
        if (entry.Reg?.Name is not { } name || !name.StartsWith("/proc/", StringComparison.Ordinal))
            return false;
        var first = name.AsSpan("/proc/".Length);
        int end = first.IndexOf('/');
        if (!uint.TryParse(end < 0 ? first : first[..end], System.Globalization.NumberStyles.None,
                System.Globalization.CultureInfo.InvariantCulture, out uint pid))
            return false;
        return ctx.Tasks.Any(t => t.Entry.Pid == pid || t.Entry.Threads.Contains(pid));
    }

    public UnixFd Open(RestoreContext ctx, file_entry entry)
    {
        var reg = entry.Reg ?? throw new CrispException($"files.img: REG entry {entry.Id} has no reg part");
        // The file exists already: never create, truncate or fail on existence again.
        int flags = (int)reg.Flags & ~(FileIo.O_CREAT | FileIo.O_TRUNC | FileIo.O_EXCL);
        UnixFd fd;
        try
        {
            fd = Ghost.GhostFile.OpenRemapped(ctx, reg) ?? FileIo.Open(Mounts.MountNamespace.PathOnMount(ctx, reg.Name, reg.MntId), flags);
        }
        catch (SyscallException e)
        {
            throw new CrispException($"file {entry.Id} ({reg.Name}): cannot open: {e.Message}");
        }
        try
        {
            var st = FdOps.Stat(fd.Fd);
            if (reg.HasSize && st.Type == FileStat.S_IFREG && (ulong)st.Size != reg.Size)
                ctx.Log.Warn($"file {reg.Name}: size {st.Size}, was {reg.Size} at dump");
            if (reg.Pos != 0)
                FileIo.Seek(fd.Fd, (long)reg.Pos, FileIo.SEEK_SET);
            try { Fown.Restore(ctx, fd.Fd, reg.Fown); }
            catch (SyscallException e) { ctx.Log.Warn($"file {reg.Name}: owner not restored: {e.Message}"); }
            return fd;
        }
        catch
        {
            fd.Dispose();
            throw;
        }
    }
}
