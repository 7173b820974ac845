using Crisp.Linux;

namespace Crisp.Resources.Files.Memfd;

/// <summary>fcntl seal commands and the ownership bits a memfd inode carries (fstat's uid, gid, mode).</summary>
internal static unsafe class MemfdSeals
{
    public const int F_ADD_SEALS = 1033, F_GET_SEALS = 1034;
    public const uint F_SEAL_SEAL = 1;

    public static uint Get(int fd) => (uint)FdOps.Fcntl(fd, F_GET_SEALS);

    public static void Add(int fd, uint seals) => FdOps.Fcntl(fd, F_ADD_SEALS, seals);

    public static (uint Uid, uint Gid, uint Mode) Owner(int fd)
    {
        byte* st = stackalloc byte[144];
        RawSyscall.Call("fstat", Sysno.fstat, fd, (long)st);
        // struct stat (x86_64): st_mode at 24, st_uid at 28, st_gid at 32.
        return (*(uint*)(st + 28), *(uint*)(st + 32), *(uint*)(st + 24) & 0xfff);
    }

    public static void SetOwner(int fd, uint uid, uint gid, uint mode)
    {
        RawSyscall.Call("fchown", Sysno.fchown, fd, uid, gid);
        RawSyscall.Call("fchmod", Sysno.fchmod, fd, mode & 0xfff);
    }
}
