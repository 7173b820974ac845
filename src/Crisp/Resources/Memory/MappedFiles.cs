using Crisp.Images;
using Crisp.Images.Proto;

namespace Crisp.Resources.Memory;

/// <summary>Files that VMAs and /proc/PID/exe refer to, one reg_file_entry per path in reg-files.img
/// (CRIU's REG_FILES image; vma_entry.shmid and mm_entry.exe_file_id hold the ids).</summary>
public sealed class MappedFiles
{
    private readonly Dictionary<string, reg_file_entry> _byPath = new(StringComparer.Ordinal);

    public uint IdOf(Dump.DumpContext ctx, string path)
    {
        if (!_byPath.TryGetValue(path, out var e))
        {
            _byPath[path] = e = new reg_file_entry
            {
                Id = ctx.NewId(),
                Flags = 0,   // O_RDONLY
                Pos = 0,
                Fown = new fown_entry(),
                Name = path,
            };
        }
        return e.Id;
    }

    public void Write(ImageDirectory images)
    {
        if (_byPath.Count > 0)
            images.Write(ImageFile.RegFiles, [.. _byPath.Values.OrderBy(e => e.Id)]);
    }

    /// <summary>Restore side: id → path.</summary>
    public static Dictionary<uint, string> Read(ImageDirectory images)
        => images.ReadAll<reg_file_entry>(ImageFile.RegFiles).ToDictionary(e => e.Id, e => e.Name);
}
