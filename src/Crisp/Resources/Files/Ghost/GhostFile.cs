using System.Buffers.Binary;
using Crisp.Dump;
using Crisp.Images;
using Crisp.Images.Proto;
using Crisp.Linux;
using Crisp.Restore;

namespace Crisp.Resources.Files.Ghost;

/// <summary>Deleted-but-open regular files ("/path (deleted)" with no link left) — CRIU's ghost files
/// (files-reg.c). The description is a REG entry named by its old path; remap-fpath.img maps it to a
/// ghost id, and ghost-file-ID.img holds owner, mode, times and the contents (raw, after the entry),
/// saved once per inode and refused over --ghost-limit. Restore creates the file under a temporary
/// name next to the old path, refills it, unlinks it at once and keeps one fd; every description
/// is then opened through that fd (/proc/self/fd), so they all share the one inode, nameless as before.</summary>
public sealed class GhostFile : IFileKind
{
    public fd_types Type => fd_types.Reg;

    public bool Claims(OpenFd fd) =>
        fd.Target.StartsWith('/')
        && fd.Target.EndsWith(" (deleted)", StringComparison.Ordinal)
        && fd.Stat.Type == FileStat.S_IFREG
        && !FileKinds.IsMqueue(fd);

    public file_entry Dump(DumpContext ctx, uint id, OpenFd fd)
    {
        string name = fd.Target[..^" (deleted)".Length];
        var st = FullStat.Of(fd.Copy.Fd);
        if (st.Nlink != 0)
            throw new CrispException($"task {fd.Pid} fd {fd.Fd}: {name} was unlinked but still has {st.Nlink} link(s) " +
                "elsewhere (CRIU's --link-remap) is not supported");
        var ghosts = ctx.Files.Ghosts;
        if (!ghosts.ByInode.TryGetValue((fd.Stat.Dev, fd.Stat.Ino), out uint ghostId))
        {
            if (fd.Stat.Size > ctx.Options.GhostLimit)
                throw new CrispException($"task {fd.Pid} fd {fd.Fd}: deleted file {name} is {fd.Stat.Size} bytes, " +
                    $"over the ghost file limit of {ctx.Options.GhostLimit} (--ghost-limit)");
            ghostId = ctx.NewId();
            WriteGhost(ctx.Images, ghostId, fd, st);
            ghosts.ByInode[(fd.Stat.Dev, fd.Stat.Ino)] = ghostId;
        }
        ghosts.Remaps.Add(new remap_file_path_entry { OrigId = id, RemapId = ghostId, RemapType = remap_type.Ghost });
        bool opath = (fd.Flags & FileIo.O_PATH) != 0;
        return new file_entry
        {
            Type = Type,
            Id = id,
            Reg = new reg_file_entry
            {
                Id = id,
                Flags = (uint)fd.Flags,
                Pos = (ulong)fd.Info.Pos,
                Fown = opath ? Fown.None() : Fown.Of(fd),
                Name = name,
                MntId = fd.Info.MntId,
                Size = (ulong)fd.Stat.Size,
                Mode = fd.Stat.Mode,
            },
        };
    }

    private static void WriteGhost(ImageDirectory images, uint ghostId, OpenFd fd, FullStat st)
    {
        // The task's fd may be write-only or O_PATH: read through a new read-only description.
        using var reader = FileIo.Open($"/proc/self/fd/{fd.Copy.Fd}", FileIo.O_RDONLY);
        var bytes = new byte[fd.Stat.Size];
        if (FileIo.PReadFully(reader.Fd, bytes, 0) != bytes.Length)
            throw new CrispException($"task {fd.Pid} fd {fd.Fd}: deleted file shrank while being saved");
        var entry = new ghost_file_entry
        {
            Uid = st.Uid,
            Gid = st.Gid,
            Mode = fd.Stat.Mode,
            Dev = (uint)fd.Stat.Dev,
            Ino = fd.Stat.Ino,
            Atim = new timeval { TvSec = (ulong)st.Atime.Sec, TvUsec = (ulong)(st.Atime.Nsec / 1000) },
            Mtim = new timeval { TvSec = (ulong)st.Mtime.Sec, TvUsec = (ulong)(st.Mtime.Nsec / 1000) },
            Chunks = false,
            Size = (ulong)bytes.Length,
        };
        using var w = images.CreateWriter(ImageFile.GhostFile(ghostId));
        w.Write(entry, bytes);
    }

    public void FinishDump(DumpContext ctx)
    {
        var remaps = ctx.Files.Ghosts.Remaps;
        if (remaps.Count > 0)
            ctx.Images.Write(ImageFile.RemapFpath, [.. remaps]);
    }

    /// <summary>The description of a REG entry that remap-fpath.img sends to a ghost, or null for a plain file.</summary>
    public static UnixFd? OpenRemapped(RestoreContext ctx, reg_file_entry reg)
    {
        var ghosts = ctx.Files.Ghosts;
        ghosts.Load(ctx.Images);
        if (!ghosts.Remaps.TryGetValue(reg.Id, out uint ghostId))
            return null;
        int holder = ghosts.Holder(ctx, ghostId, reg.Name);
        // The inode has no name any more: open it again through crisp's fd, with the entry's own flags.
        int flags = (int)reg.Flags & ~(FileIo.O_CREAT | FileIo.O_TRUNC | FileIo.O_EXCL);
        return FileIo.Open($"/proc/self/fd/{holder}", flags);
    }

    public UnixFd Open(RestoreContext ctx, file_entry entry) =>
        new Regular.RegularFile().Open(ctx, entry);
}

/// <summary>Dump-wide: the ghost id of each deleted inode saved, and the remap of each description.</summary>
public sealed class GhostDump
{
    public Dictionary<(ulong Dev, ulong Ino), uint> ByInode { get; } = [];
    public List<remap_file_path_entry> Remaps { get; } = [];
}

/// <summary>Restore-wide: the remaps, and crisp's fd of each ghost re-created (nameless once made).</summary>
public sealed class GhostRestore : IDisposable
{
    private readonly Dictionary<uint, UnixFd> _holders = [];
    private bool _loaded;

    public Dictionary<uint, uint> Remaps { get; } = [];

    public void Load(ImageDirectory images)
    {
        if (_loaded)
            return;
        _loaded = true;
        if (!images.Exists(ImageFile.RemapFpath))
            return;
        foreach (var r in images.ReadAll<remap_file_path_entry>(ImageFile.RemapFpath))
        {
            if (r.RemapType != remap_type.Ghost)
                throw new CrispException($"remap-fpath.img: file {r.OrigId}: remap type {r.RemapType} is not supported");
            Remaps[r.OrigId] = r.RemapId;
        }
    }

    public int Holder(RestoreContext ctx, uint ghostId, string name)
    {
        if (_holders.TryGetValue(ghostId, out var fd))
            return fd.Fd;
        fd = Create(ctx.Images, ghostId, name);
        _holders[ghostId] = fd;
        return fd.Fd;
    }

    private static UnixFd Create(ImageDirectory images, uint ghostId, string name)
    {
        ghost_file_entry entry;
        byte[] bytes;
        using (var r = images.OpenReader(ImageFile.GhostFile(ghostId)))
        {
            entry = r.Read<ghost_file_entry>() ?? throw new CrispException($"ghost-file-{ghostId}.img is empty");
            if (entry.Chunks)
                throw new CrispException($"ghost-file-{ghostId}.img: chunked ghost files are not supported");
            bytes = r.ReadExtra(r.Remaining);
        }
        // The old name when it is still free, so readlink(/proc/PID/fd/N) reads "NAME (deleted)" as before the
        // dump; else CRIU's temporary name next to it (same filesystem). Either is unlinked at once.
        string temp = name;
        UnixFd fd;
        try
        {
            fd = FileIo.Open(temp, FileIo.O_RDWR | FileIo.O_CREAT | FileIo.O_EXCL, entry.Mode & 0xfff);
        }
        catch (SyscallException)
        {
            temp = $"{name}.cr.{ghostId:x}.ghost";
            try
            {
                fd = FileIo.Open(temp, FileIo.O_RDWR | FileIo.O_CREAT | FileIo.O_EXCL, entry.Mode & 0xfff);
            }
            catch (SyscallException e)
            {
                throw new CrispException($"ghost file {ghostId} ({name}): cannot create {temp}: {e.Message}");
            }
        }
        try
        {
            File.Delete(temp);
            FileIo.PWriteExactly(fd.Fd, bytes, 0);
            RawSyscall.Call("fchown", Sysno.fchown, fd.Fd, entry.Uid, entry.Gid);
            RawSyscall.Call("fchmod", Sysno.fchmod, fd.Fd, entry.Mode & 0xfff);
            if (entry.Atim is { } a && entry.Mtim is { } m)
                SetTimes(fd.Fd, a, m);
            return fd;
        }
        catch
        {
            fd.Dispose();
            File.Delete(temp);
            throw;
        }
    }

    private static unsafe void SetTimes(int fd, timeval atime, timeval mtime)
    {
        long* ts = stackalloc long[4];
        ts[0] = (long)atime.TvSec;
        ts[1] = (long)atime.TvUsec * 1000;
        ts[2] = (long)mtime.TvSec;
        ts[3] = (long)mtime.TvUsec * 1000;
        RawSyscall.Call("utimensat", Sysno.utimensat, fd, 0, (long)ts, 0);
    }

    public void Dispose()
    {
        foreach (var fd in _holders.Values)
            fd.Dispose();
        _holders.Clear();
    }
}

/// <summary>The fstat fields FileStat leaves out: link count, owner, times.</summary>
public readonly record struct FullStat(ulong Nlink, uint Uid, uint Gid, (long Sec, long Nsec) Atime, (long Sec, long Nsec) Mtime)
{
    public static unsafe FullStat Of(int fd)
    {
        byte* st = stackalloc byte[144];
        RawSyscall.Call("fstat", Sysno.fstat, fd, (long)st);
        var s = new ReadOnlySpan<byte>(st, 144);
        return new FullStat(
            BinaryPrimitives.ReadUInt64LittleEndian(s[16..]),
            BinaryPrimitives.ReadUInt32LittleEndian(s[28..]),
            BinaryPrimitives.ReadUInt32LittleEndian(s[32..]),
            (BinaryPrimitives.ReadInt64LittleEndian(s[72..]), BinaryPrimitives.ReadInt64LittleEndian(s[80..])),
            (BinaryPrimitives.ReadInt64LittleEndian(s[88..]), BinaryPrimitives.ReadInt64LittleEndian(s[96..])));
    }
}
