using Crisp.Linux.Proc;
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
        var ghosts = ctx.Files.Ghosts;
        ghosts.Remap(id, ghosts.GhostOf(ctx, fd.Copy.Fd, fd.Stat, name, $"task {fd.Pid} fd {fd.Fd}"));
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

    public void FinishDump(DumpContext ctx)
    {
        var remaps = ctx.Files.Ghosts.Remaps;
        if (remaps.Count > 0)
            ctx.Images.Write(ImageFile.RemapFpath, [.. remaps]);
    }

    /// <summary>The description of a REG entry that remap-fpath.img sends to a ghost, or null for a plain file.</summary>
    public static UnixFd? OpenRemapped(RestoreContext ctx, reg_file_entry reg)
    {
        if (HolderPath(ctx, reg.Id, reg.Name) is not { } holder)
            return null;
        // The inode has no name any more: open it again through crisp's fd, with the entry's own flags.
        int flags = (int)reg.Flags & ~(FileIo.O_CREAT | FileIo.O_TRUNC | FileIo.O_EXCL);
        return FileIo.Open(holder, flags);
    }

    /// <summary>Where the ghost that file <paramref name="fileId"/> is remapped to can be opened (crisp's holder
    /// fd, /proc/CRISP/fd/N — a mapping or a cwd reach it so too), or null when the file is not a ghost.</summary>
    public static string? HolderPath(RestoreContext ctx, uint fileId, string name)
    {
        var ghosts = ctx.Files.Ghosts;
        ghosts.Load(ctx.Images);
        if (!ghosts.Remaps.TryGetValue(fileId, out uint ghostId))
            return null;
        return Procfs.Host.Path(Environment.ProcessId, $"fd/{ghosts.Holder(ctx, ghostId, name)}");
    }

    public UnixFd Open(RestoreContext ctx, file_entry entry) =>
        new Regular.RegularFile().Open(ctx, entry);
}

/// <summary>Dump-wide: the ghost id of each deleted inode saved, and the remap of each description.</summary>
public sealed class GhostDump
{
    public Dictionary<(ulong Dev, ulong Ino), uint> ByInode { get; } = [];
    public List<remap_file_path_entry> Remaps { get; } = [];

    /// <summary>The ghost id of the deleted file or directory open at crisp's <paramref name="fd"/>, saved in
    /// ghost-file-ID.img the first time its inode is met (a file's contents over --ghost-limit are refused).</summary>
    public uint GhostOf(DumpContext ctx, int fd, FileStat stat, string name, string what)
    {
        if (ByInode.TryGetValue((stat.Dev, stat.Ino), out uint ghostId))
            return ghostId;
        var st = FullStat.Of(fd);
        if (st.Nlink != 0)
            throw new CrispException($"{what}: {name} was unlinked but still has {st.Nlink} link(s) " +
                "elsewhere (CRIU's --link-remap) is not supported");
        if (stat.Type == FileStat.S_IFREG && stat.Size > ctx.Options.GhostLimit)
            throw new CrispException($"{what}: deleted file {name} is {stat.Size} bytes, " +
                $"over the ghost file limit of {ctx.Options.GhostLimit} (--ghost-limit)");
        ghostId = ctx.NewId();
        WriteGhost(ctx.Images, ghostId, fd, stat, st, what);
        ByInode[(stat.Dev, stat.Ino)] = ghostId;
        return ghostId;
    }

    public void Remap(uint fileId, uint ghostId) =>
        Remaps.Add(new remap_file_path_entry { OrigId = fileId, RemapId = ghostId, RemapType = remap_type.Ghost });

    /// <summary>Owner, mode, times and, for a file, the contents after the entry (a directory has none: it was empty to be removed).</summary>
    private static void WriteGhost(ImageDirectory images, uint ghostId, int fd, FileStat stat, FullStat st, string what)
    {
        byte[] bytes = [];
        if (stat.Type == FileStat.S_IFREG)
        {
            // The task's fd may be write-only or O_PATH: read through a new read-only description.
            using var reader = FileIo.Open($"/proc/self/fd/{fd}", FileIo.O_RDONLY);
            bytes = new byte[stat.Size];
            if (FileIo.PReadFully(reader.Fd, bytes, 0) != bytes.Length)
                throw new CrispException($"{what}: deleted file shrank while being saved");
        }
        var entry = new ghost_file_entry
        {
            Uid = st.Uid,
            Gid = st.Gid,
            Mode = stat.Mode,
            Dev = (uint)stat.Dev,
            Ino = stat.Ino,
            Atim = new timeval { TvSec = (ulong)st.Atime.Sec, TvUsec = (ulong)(st.Atime.Nsec / 1000) },
            Mtim = new timeval { TvSec = (ulong)st.Mtime.Sec, TvUsec = (ulong)(st.Mtime.Nsec / 1000) },
            Chunks = false,
            Size = (ulong)bytes.Length,
        };
        using var w = images.CreateWriter(ImageFile.GhostFile(ghostId));
        w.Write(entry, bytes);
    }
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
        bool dir = (entry.Mode & FileStat.S_IFMT) == FileStat.S_IFDIR;
        string temp = name;
        UnixFd fd;
        try
        {
            fd = New(temp, dir, entry.Mode);
        }
        catch (SyscallException)
        {
            temp = $"{name}.cr.{ghostId:x}.ghost";
            try
            {
                fd = New(temp, dir, entry.Mode);
            }
            catch (SyscallException e)
            {
                throw new CrispException($"ghost file {ghostId} ({name}): cannot create {temp}: {e.Message}");
            }
        }
        try
        {
            if (dir)
                Directory.Delete(temp);
            else
                File.Delete(temp);
            if (bytes.Length > 0)
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
            if (dir && Directory.Exists(temp))
                Directory.Delete(temp);
            else if (!dir)
                File.Delete(temp);
            throw;
        }
    }

    /// <summary>A new file (read-write) or directory (read-only) at <paramref name="path"/>, failing if the name is taken.</summary>
    private static unsafe UnixFd New(string path, bool dir, uint mode)
    {
        if (!dir)
            return FileIo.Open(path, FileIo.O_RDWR | FileIo.O_CREAT | FileIo.O_EXCL, mode & 0xfff);
        var bytes = System.Text.Encoding.UTF8.GetBytes(path + "\0");
        fixed (byte* p = bytes)
            RawSyscall.Call($"mkdirat({path})", Sysno.mkdirat, FileIo.AT_FDCWD, (long)p, mode & 0xfff);
        return FileIo.Open(path, FileIo.O_RDONLY | FileIo.O_DIRECTORY);
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
