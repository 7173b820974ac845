using System.Text;

namespace Crisp.Linux.Proc;

/// <summary>What a VMA is, from the path column of /proc/PID/maps.</summary>
public enum VmaKind
{
    Anonymous,
    File,
    Heap,
    Stack,
    Vdso,
    Vvar,
    VvarVclock,
    Vsyscall,
    /// <summary>Other bracketed names: [anon:NAME], [anon_shmem:NAME], [uprobes], …</summary>
    Special,
}

[Flags]
public enum VmaProt
{
    None = 0,
    Read = 1,
    Write = 2,
    Exec = 4,
}

/// <summary>One line of /proc/PID/maps.</summary>
public sealed record MapsEntry(
    ulong Start, ulong End, VmaProt Prot, bool Shared, ulong Offset,
    uint DevMajor, uint DevMinor, ulong Inode, string Path, bool Deleted)
{
    public ulong Length => End - Start;
    public bool CanRead => (Prot & VmaProt.Read) != 0;
    public bool CanWrite => (Prot & VmaProt.Write) != 0;
    public bool CanExec => (Prot & VmaProt.Exec) != 0;

    public VmaKind Kind => Path switch
    {
        "" => VmaKind.Anonymous,
        "[heap]" => VmaKind.Heap,
        "[stack]" => VmaKind.Stack,
        "[vdso]" => VmaKind.Vdso,
        "[vvar]" => VmaKind.Vvar,
        "[vvar_vclock]" => VmaKind.VvarVclock,
        "[vsyscall]" => VmaKind.Vsyscall,
        _ when Path.StartsWith('[') && Path.EndsWith(']') => VmaKind.Special,
        _ => VmaKind.File,
    };

    /// <summary>A memfd mapping ("/memfd:NAME (deleted)").</summary>
    public bool IsMemfd => Path.StartsWith("/memfd:", StringComparison.Ordinal);

    /// <summary>A mapping of a socket ("socket:[INODE]"): a packet socket's rx/tx rings.</summary>
    public bool IsSocket => Path.StartsWith("socket:[", StringComparison.Ordinal) && Path.EndsWith(']');

    /// <summary>A System V shared memory segment ("/SYSV0000abcd (deleted)").</summary>
    public bool IsSysvShm => Path.StartsWith("/SYSV", StringComparison.Ordinal) && Deleted;

    /// <summary>The maps line as the kernel formats it (path column padded to 73).</summary>
    public override string ToString()
    {
        var sb = new StringBuilder();
        sb.Append($"{Start:x8}-{End:x8} {(CanRead ? 'r' : '-')}{(CanWrite ? 'w' : '-')}{(CanExec ? 'x' : '-')}{(Shared ? 's' : 'p')} ");
        sb.Append($"{Offset:x8} {DevMajor:x2}:{DevMinor:x2} {Inode} ");
        if (Path.Length > 0)
        {
            sb.Append(' ', Math.Max(1, 73 - sb.Length) - 1).Append(' ').Append(Path);
            if (Deleted)
                sb.Append(" (deleted)");
        }
        return sb.ToString();
    }
}
