using Crisp.Dump;
using Crisp.Images;
using Crisp.Images.Proto;
using Crisp.Linux;
using Crisp.Resources.Files.Pipes;
using Crisp.Restore;

namespace Crisp.Resources.Files.Fifo;

/// <summary>Named pipes (a FIFO opened by path) — CRIU's FIFO kind (fifo.c): a fifo_entry with the
/// pipe's inode as pipe_id and a REG entry (regf_id) for the path and flags; unread data goes to
/// fifo-data.img the way pipes-data.img keeps a pipe's (tee, so the task keeps it too). Restore opens
/// the path O_RDWR once per FIFO (so no open blocks or fails for want of the other end), refills it,
/// then opens each description with its own flags; crisp's O_RDWR end is closed after the restore.</summary>
public sealed class FifoFile : IFileKind
{
    public fd_types Type => fd_types.Fifo;

    public bool Claims(OpenFd fd) =>
        fd.Stat.Type == FileStat.S_IFIFO && fd.Target.StartsWith('/')
        && !fd.Target.EndsWith(" (deleted)", StringComparison.Ordinal);

    public file_entry Dump(DumpContext ctx, uint id, OpenFd fd)
    {
        uint pipeId = (uint)fd.Stat.Ino;
        var data = ctx.Files.FifoData;
        if (!data.Seen.ContainsKey(pipeId))
            data.Seen[pipeId] = PipeData.Peek(fd.Copy.Fd, fd.Flags);
        uint regId = PathEntry.Add(ctx, fd);
        return new file_entry { Type = Type, Id = id, Fifo = new fifo_entry { Id = id, PipeId = pipeId, RegfId = regId } };
    }

    public void FinishDump(DumpContext ctx)
    {
        var withData = ctx.Files.FifoData.Seen.Where(p => p.Value.Bytes.Length > 0).OrderBy(p => p.Key).ToList();
        if (withData.Count == 0)
            return;
        using var w = ctx.Images.CreateWriter(ImageFile.FifoData);
        foreach (var (id, (bytes, size)) in withData)
            w.Write(new pipe_data_entry { PipeId = id, Bytes = (uint)bytes.Length, Size = (uint)size }, bytes);
    }

    public UnixFd Open(RestoreContext ctx, file_entry entry)
    {
        var fe = entry.Fifo ?? throw new CrispException($"files.img: FIFO entry {entry.Id} has no fifo part");
        var set = ctx.Files.Fifos;
        var reg = set.Reg(ctx.Images, fe.RegfId)
            ?? throw new CrispException($"files.img: FIFO entry {entry.Id} names path entry {fe.RegfId}, which is missing");
        set.Hold(ctx.Images, fe.PipeId, reg.Name);
        int flags = (int)reg.Flags & ~(FileIo.O_CREAT | FileIo.O_TRUNC | FileIo.O_EXCL);
        UnixFd fd;
        try
        {
            // Non-blocking so a write-only open never waits: crisp's O_RDWR end is a reader.
            fd = FileIo.Open(reg.Name, flags | FileIo.O_NONBLOCK);
        }
        catch (SyscallException e)
        {
            throw new CrispException($"fifo {reg.Name}: cannot open: {e.Message}");
        }
        try
        {
            int now = FdOps.Fcntl(fd.Fd, FdOps.F_GETFL);
            if ((flags & FileIo.O_NONBLOCK) == 0)
                FdOps.Fcntl(fd.Fd, FdOps.F_SETFL, now & ~FileIo.O_NONBLOCK);
            FdOps.SetStatusFlags(fd.Fd, flags);
            try { Fown.Restore(ctx, fd.Fd, reg.Fown); }
            catch (SyscallException e) { ctx.Log.Warn($"fifo {reg.Name}: owner not restored: {e.Message}"); }
            return fd;
        }
        catch
        {
            fd.Dispose();
            throw;
        }
    }
}

/// <summary>Dump-wide: the unread bytes (and size) of each FIFO, by pipe_id, taken once per FIFO.</summary>
public sealed class FifoDataDump
{
    public Dictionary<uint, (byte[] Bytes, int Size)> Seen { get; } = [];
}

/// <summary>Restore-wide: files.img's REG entries (FIFO paths) and crisp's O_RDWR end of each FIFO.</summary>
public sealed class FifoSet : IDisposable
{
    private readonly Dictionary<uint, UnixFd> _held = [];
    private Dictionary<uint, reg_file_entry>? _regs;
    private Dictionary<uint, (pipe_data_entry Entry, byte[] Bytes)>? _data;

    public reg_file_entry? Reg(ImageDirectory images, uint id)
    {
        _regs ??= images.ReadAll<file_entry>(ImageFile.Files).Where(e => e.Reg is not null).ToDictionary(e => e.Id, e => e.Reg);
        return _regs.GetValueOrDefault(id);
    }

    public void Hold(ImageDirectory images, uint pipeId, string path)
    {
        if (_held.ContainsKey(pipeId))
            return;
        _data ??= ReadData(images);
        UnixFd fd;
        try
        {
            fd = FileIo.Open(path, FileIo.O_RDWR | FileIo.O_NONBLOCK);
        }
        catch (SyscallException e)
        {
            throw new CrispException($"fifo {path}: cannot open: {e.Message}");
        }
        _held[pipeId] = fd;
        if (FdOps.Stat(fd.Fd).Type != FileStat.S_IFIFO)
            throw new CrispException($"fifo {path}: no longer a FIFO");
        if (_data.TryGetValue(pipeId, out var d))
        {
            try
            {
                int size = Math.Max((int)d.Entry.Size, d.Bytes.Length);
                if (size > FdOps.Fcntl(fd.Fd, FdOps.F_GETPIPE_SZ))
                    FdOps.Fcntl(fd.Fd, FdOps.F_SETPIPE_SZ, size);
                FileIo.WriteExactly(fd.Fd, d.Bytes);
            }
            catch (SyscallException e)
            {
                throw new CrispException($"fifo {path}: cannot refill {d.Bytes.Length} bytes: {e.Message}");
            }
        }
    }

    private static Dictionary<uint, (pipe_data_entry, byte[])> ReadData(ImageDirectory images)
    {
        var all = new Dictionary<uint, (pipe_data_entry, byte[])>();
        if (!images.Exists(ImageFile.FifoData))
            return all;
        using var r = images.OpenReader(ImageFile.FifoData);
        while (r.Read<pipe_data_entry>() is { } e)
            all[e.PipeId] = (e, r.ReadExtra(e.Bytes));
        return all;
    }

    public void Dispose()
    {
        foreach (var fd in _held.Values)
            fd.Dispose();
        _held.Clear();
    }
}
