using Crisp.Images;
using Crisp.Images.Proto;
using Crisp.Resources.Files;

namespace Crisp.Resources.Memory;

/// <summary>Files mapped by VMAs (and the exe), one entry per path. They go into files.img as REG entries
/// that no fd refers to, as current CRIU writes them; restore also reads the legacy reg-files.img.</summary>
public sealed class MappedFiles(FileTable table)
{
    private readonly Dictionary<string, uint> _byPath = new(StringComparer.Ordinal);

    public uint IdOf(Dump.DumpContext ctx, string path)
    {
        if (!_byPath.TryGetValue(path, out uint id))
            _byPath[path] = id = table.Add(ctx, newId => new file_entry
            {
                Type = fd_types.Reg,
                Id = newId,
                Reg = new reg_file_entry { Id = newId, Flags = 0 /* O_RDONLY */, Pos = 0, Fown = Fown.None(), Name = path },
            });
        return id;
    }

    /// <summary>Restore side: id → path of every regular file entry, from files.img and reg-files.img; a deleted
    /// file's is the path of the ghost crisp re-created for it.</summary>
    public static Dictionary<uint, string> Read(Restore.RestoreContext ctx)
    {
        var images = ctx.Images;
        var byId = images.ReadAll<reg_file_entry>(ImageFile.RegFiles).ToDictionary(e => e.Id, e => e.Name);
        foreach (var e in images.ReadAll<file_entry>(ImageFile.Files))
            if (e.Type == fd_types.Reg && e.Reg is not null)
                byId.TryAdd(e.Id, Files.Ghost.GhostFile.HolderPath(ctx, e.Id, e.Reg.Name) ?? e.Reg.Name);
        return byId;
    }
}
