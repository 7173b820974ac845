namespace Crisp.Linux;

/// <summary>Syscall numbers for mount trees and the files of a tmpfs (Resources/Mounts).</summary>
public static partial class Sysno
{
    public const long pivot_root = 155, mkdirat = 258, mknodat = 259, fchownat = 260, newfstatat = 262,
        linkat = 265, symlinkat = 266, fchmodat = 268, open_tree = 428, lsetxattr = 189, lgetxattr = 192, llistxattr = 195;
}
