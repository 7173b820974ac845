using Crisp.Dump;
using Crisp.Images;
using Crisp.Images.Proto;
using Crisp.Linux;
using Crisp.Restore;

namespace Crisp.Resources.Files.Pipes;

/// <summary>Pipe ends (pipe:[ino]) — CRIU's PIPE kind (pipes.c). A pipe is known by its inode
/// (pipe_id); each end's description is one pipe_entry. Unread data is copied out with tee, so the
/// task still has it, and written back into the new pipe on restore.</summary>
public sealed class PipeFile : IFileKind
{
    public void FinishDump(DumpContext ctx) => ctx.Files.PipeData.Write(ctx.Images);

    public fd_types Type => fd_types.Pipe;

    public bool Claims(OpenFd fd) =>
        fd.Stat.Type == FileStat.S_IFIFO && fd.Target.StartsWith("pipe:[", StringComparison.Ordinal);

    public file_entry Dump(DumpContext ctx, uint id, OpenFd fd)
    {
        uint pipeId = (uint)fd.Stat.Ino;
        var data = ctx.Files.PipeData;
        if (!data.Seen.ContainsKey(pipeId))
            data.Seen[pipeId] = PipeData.Peek(fd.Copy.Fd, fd.Flags);
        return new file_entry
        {
            Type = Type,
            Id = id,
            Pipe = new pipe_entry { Id = id, PipeId = pipeId, Flags = (uint)fd.Flags, Fown = Fown.Of(fd) },
        };
    }

    public UnixFd Open(RestoreContext ctx, file_entry entry)
    {
        var pe = entry.Pipe ?? throw new CrispException($"files.img: PIPE entry {entry.Id} has no pipe part");
        var pipe = ctx.Files.Pipes.Get(ctx, pe.PipeId);
        bool reader = ((int)pe.Flags & FileIo.O_ACCMODE) == FileIo.O_RDONLY;
        var fd = pipe.TakeEnd(reader);
        try
        {
            FdOps.SetStatusFlags(fd.Fd, (int)pe.Flags);
            try { Fown.Restore(ctx, fd.Fd, pe.Fown); }
            catch (SyscallException e) { ctx.Log.Warn($"pipe {pe.PipeId}: owner not restored: {e.Message}"); }
            return fd;
        }
        catch
        {
            fd.Dispose();
            throw;
        }
    }
}

/// <summary>Dump-wide: the unread bytes and the size of each pipe, by pipe_id, taken once per pipe. Every pipe
/// gets an entry, empty ones too (as CRIU writes them): a size set with F_SETPIPE_SZ must come back.</summary>
public sealed class PipeDataDump
{
    public Dictionary<uint, (byte[] Bytes, int Size)> Seen { get; } = [];

    public void Write(ImageDirectory images)
    {
        if (Seen.Count == 0)
            return;
        using var w = images.CreateWriter(ImageFile.PipesData);
        foreach (var (id, (bytes, size)) in Seen.OrderBy(p => p.Key))
            w.Write(new pipe_data_entry { PipeId = id, Bytes = (uint)bytes.Length, Size = (uint)size }, bytes);
    }
}

/// <summary>Reading a pipe's contents without consuming them.</summary>
public static class PipeData
{
    /// <summary>Unread bytes of the pipe <paramref name="end"/> belongs to, and the pipe's size. A write end
    /// is reopened read-only through /proc (a new reader of the same pipe) to tee from.</summary>
    public static (byte[] Bytes, int Size) Peek(int end, int flags)
    {
        using var reopened = (flags & FileIo.O_ACCMODE) == FileIo.O_RDONLY
            ? null
            : FileIo.Open($"/proc/self/fd/{end}", FileIo.O_RDONLY | FileIo.O_NONBLOCK);
        int source = reopened?.Fd ?? end;
        int size = FdOps.Fcntl(source, FdOps.F_GETPIPE_SZ);
        var (r, w) = FdOps.Pipe();
        using (r)
        using (w)
        {
            // The copy must fit the whole pipe: tee never blocks and takes all or what fits.
            FdOps.Fcntl(w.Fd, FdOps.F_SETPIPE_SZ, size);
            long n = FdOps.TeeNonBlocking(source, w.Fd, size);
            var bytes = new byte[n];
            int done = 0;
            while (done < n)
                done += FileIo.Read(r.Fd, bytes.AsSpan(done));
            return (bytes, size);
        }
    }
}

/// <summary>Restore-wide: one new pipe per pipe_id, filled with its saved data; each end is handed
/// to the first description that wants it, further descriptions of the same end are reopened.</summary>
public sealed class PipeSet : IDisposable
{
    private readonly Dictionary<uint, RestoredPipe> _pipes = [];
    private Dictionary<uint, (pipe_data_entry Entry, byte[] Bytes)>? _data;

    public RestoredPipe Get(RestoreContext ctx, uint pipeId)
    {
        if (_pipes.TryGetValue(pipeId, out var p))
            return p;
        _data ??= ReadData(ctx.Images);
        p = RestoredPipe.Create(pipeId, _data.TryGetValue(pipeId, out var d) ? d : null);
        _pipes[pipeId] = p;
        return p;
    }

    public void Dispose()
    {
        foreach (var p in _pipes.Values)
            p.Dispose();
        _pipes.Clear();
    }

    private static Dictionary<uint, (pipe_data_entry, byte[])> ReadData(ImageDirectory images)
    {
        var all = new Dictionary<uint, (pipe_data_entry, byte[])>();
        if (!images.Exists(ImageFile.PipesData))
            return all;
        using var r = images.OpenReader(ImageFile.PipesData);
        while (r.Read<pipe_data_entry>() is { } e)
            all[e.PipeId] = (e, r.ReadExtra(e.Bytes));
        return all;
    }
}

/// <summary>A pipe made by crisp for one pipe_id; crisp holds both ends until cleanup.</summary>
public sealed class RestoredPipe : IDisposable
{
    private readonly UnixFd _read, _write;
    private bool _readTaken, _writeTaken;

    private RestoredPipe(uint id, UnixFd read, UnixFd write)
    {
        Id = id;
        _read = read;
        _write = write;
    }

    public uint Id { get; }

    public static RestoredPipe Create(uint id, (pipe_data_entry Entry, byte[] Bytes)? data)
    {
        var (r, w) = FdOps.Pipe();
        var pipe = new RestoredPipe(id, r, w);
        try
        {
            if (data is { } d)
            {
                // The dumped size exactly (larger or smaller than the default); never below what it holds.
                int size = d.Entry.HasSize ? Math.Max((int)d.Entry.Size, d.Bytes.Length) : d.Bytes.Length;
                if (size > 0 && size != FdOps.Fcntl(w.Fd, FdOps.F_GETPIPE_SZ))
                    FdOps.Fcntl(w.Fd, FdOps.F_SETPIPE_SZ, size);
                FileIo.WriteExactly(w.Fd, d.Bytes);
            }
            return pipe;
        }
        catch (SyscallException e)
        {
            pipe.Dispose();
            throw new CrispException($"pipe {id}: cannot refill {data?.Bytes.Length} bytes: {e.Message}");
        }
    }

    /// <summary>A new fd (crisp's to close) of the read or write end: the original end the first time,
    /// afterwards a separate description reopened through /proc.</summary>
    public UnixFd TakeEnd(bool reader)
    {
        ref bool taken = ref reader ? ref _readTaken : ref _writeTaken;
        var end = reader ? _read : _write;
        if (!taken)
        {
            taken = true;
            return new UnixFd(FdOps.Fcntl(end.Fd, FdOps.F_DUPFD_CLOEXEC));
        }
        return FileIo.Open($"/proc/self/fd/{end.Fd}", (reader ? FileIo.O_RDONLY : FileIo.O_WRONLY) | FileIo.O_NONBLOCK);
    }

    public void Dispose()
    {
        _read.Dispose();
        _write.Dispose();
    }
}
