using Crisp.Dump;
using Crisp.Images;
using Crisp.Images.Proto;
using Crisp.Linux;

namespace Crisp.Resources.Files;

/// <summary>Dump-wide registry of open file descriptions: each gets one file id and one file_entry in
/// files.img, however many fds (in however many tasks) refer to it. Fs adds its cwd/root entries here.</summary>
public sealed class FileTable
{
    // A description seen first at (pid, fd), indexed by inode so kcmp runs only on candidates.
    private readonly Dictionary<(ulong Dev, ulong Ino), List<(int Pid, int Fd, uint Id)>> _byInode = [];

    public List<file_entry> Entries { get; } = [];

    /// <summary>The id of the description at <paramref name="fd"/>, dumping it with
    /// <paramref name="kind"/> the first time it is seen.</summary>
    public uint IdOf(DumpContext ctx, IFileKind kind, OpenFd fd)
    {
        var key = (fd.Stat.Dev, fd.Stat.Ino);
        if (!_byInode.TryGetValue(key, out var seen))
            _byInode[key] = seen = [];
        foreach (var (pid, other, id) in seen)
            if (Kcmp.SameFile(pid, other, fd.Pid, fd.Fd))
                return id;
        uint newId = ctx.NewId();
        Entries.Add(kind.Dump(ctx, newId, fd));
        seen.Add((fd.Pid, fd.Fd, newId));
        return newId;
    }

    /// <summary>Adds an entry that is no task's fd (cwd, root); returns its id.</summary>
    public uint Add(DumpContext ctx, Func<uint, file_entry> make)
    {
        uint id = ctx.NewId();
        Entries.Add(make(id));
        return id;
    }

    public void Write(ImageDirectory images)
    {
        using var w = images.CreateWriter(ImageFile.Files);
        foreach (var e in Entries)
            w.Write(e);
    }
}
