using Crisp.Dump;
using Crisp.Images.Proto;

namespace Crisp.Resources.Files;

/// <summary>The REG entry that names the path of a description whose own entry refers to it by id (CRIU's
/// regf_id: fifos, consoles, VTs, /dev/tty): the path, flags, fown, mount and mode, position 0.</summary>
public static class PathEntry
{
    public static uint Add(DumpContext ctx, OpenFd fd) => ctx.Files.Table.Add(ctx, rid => new file_entry
    {
        Type = fd_types.Reg,
        Id = rid,
        Reg = new reg_file_entry
        {
            Id = rid,
            Flags = (uint)fd.Flags,
            Pos = 0,
            Fown = Fown.Of(fd),
            Name = fd.Target,
            MntId = fd.Info.MntId,
            Mode = fd.Stat.Mode,
        },
    });
}
