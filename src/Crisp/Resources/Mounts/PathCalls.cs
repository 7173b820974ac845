using System.Buffers.Binary;
using System.Text;
using Crisp.Linux;

namespace Crisp.Resources.Mounts;

/// <summary>What lstat(2) says about a path (the fields a tmpfs archive keeps).</summary>
public readonly record struct NodeStat(ulong Dev, ulong Ino, ulong Nlink, uint Mode, uint Uid, uint Gid, ulong Rdev, long Size,
    long MtimeSec, long MtimeNsec)
{
    public uint Type => Mode & 0xf000;
    public uint Permissions => Mode & 0xfff;
    public uint RdevMajor => (uint)(((Rdev >> 8) & 0xfff) | ((Rdev >> 32) & ~0xfffUL));
    public uint RdevMinor => (uint)((Rdev & 0xff) | ((Rdev >> 12) & ~0xffUL));
}

/// <summary>Path syscalls crisp makes itself on files of a tree's tmpfs (reached through /proc/PID/root), none of
/// which follows a symlink in the last component.</summary>
public static unsafe class PathCalls
{
    private const int AT_SYMLINK_NOFOLLOW = 0x100;

    public static NodeStat? TryLstat(string path)
    {
        byte* st = stackalloc byte[144];
        long r;
        fixed (byte* p = Z(path))
            r = RawSyscall.TryCall(Sysno.newfstatat, FileIo.AT_FDCWD, (long)p, (long)st, AT_SYMLINK_NOFOLLOW);
        if (r == -Errnos.ENOENT)
            return null;
        if (r < 0)
            throw new SyscallException($"lstat({path})", (int)-r);
        var s = new ReadOnlySpan<byte>(st, 144);
        return new NodeStat(
            Dev: BinaryPrimitives.ReadUInt64LittleEndian(s),
            Ino: BinaryPrimitives.ReadUInt64LittleEndian(s[8..]),
            Nlink: BinaryPrimitives.ReadUInt64LittleEndian(s[16..]),
            Mode: BinaryPrimitives.ReadUInt32LittleEndian(s[24..]),
            Uid: BinaryPrimitives.ReadUInt32LittleEndian(s[28..]),
            Gid: BinaryPrimitives.ReadUInt32LittleEndian(s[32..]),
            Rdev: BinaryPrimitives.ReadUInt64LittleEndian(s[40..]),
            Size: BinaryPrimitives.ReadInt64LittleEndian(s[48..]),
            MtimeSec: BinaryPrimitives.ReadInt64LittleEndian(s[88..]),
            MtimeNsec: BinaryPrimitives.ReadInt64LittleEndian(s[96..]));
    }

    public static NodeStat Lstat(string path) => TryLstat(path) ?? throw new SyscallException($"lstat({path})", Errnos.ENOENT);

    public static string ReadLink(string path) =>
        new FileInfo(path).LinkTarget ?? throw new CrispException($"{path}: not a symlink");

    public static void Mkdir(string path, uint mode) => Call($"mkdir({path})", Sysno.mkdirat, path, mode);

    public static void Mknod(string path, uint mode, ulong dev) => Call($"mknod({path})", Sysno.mknodat, path, mode, (long)dev);

    public static void Chown(string path, uint uid, uint gid) =>
        Call($"lchown({path})", Sysno.fchownat, path, uid, gid, AT_SYMLINK_NOFOLLOW);

    /// <summary>chmod of a non-symlink (fchmodat cannot take AT_SYMLINK_NOFOLLOW; symlinks are skipped).</summary>
    public static void Chmod(string path, uint mode) => Call($"chmod({path})", Sysno.fchmodat, path, mode);

    public static void Symlink(string target, string path)
    {
        fixed (byte* t = Z(target))
        fixed (byte* p = Z(path))
            RawSyscall.Call($"symlink({path})", Sysno.symlinkat, (long)t, FileIo.AT_FDCWD, (long)p);
    }

    public static void Link(string existing, string path)
    {
        fixed (byte* e = Z(existing))
        fixed (byte* p = Z(path))
            RawSyscall.Call($"link({path})", Sysno.linkat, FileIo.AT_FDCWD, (long)e, FileIo.AT_FDCWD, (long)p, 0);
    }

    /// <summary>The modification time (access time set to it too), not following a symlink.</summary>
    public static void SetMtime(string path, DateTimeOffset mtime)
    {
        long ns = (mtime.UtcTicks - DateTime.UnixEpoch.Ticks) * 100;
        long* times = stackalloc long[4] { ns / 1_000_000_000, ns % 1_000_000_000, ns / 1_000_000_000, ns % 1_000_000_000 };
        fixed (byte* p = Z(path))
            RawSyscall.Call($"utimensat({path})", Sysno.utimensat, FileIo.AT_FDCWD, (long)p, (long)times, AT_SYMLINK_NOFOLLOW);
    }

    /// <summary>open_tree(OPEN_TREE_CLONE): a detached copy of the mount at <paramref name="path"/>, which a process
    /// in another mount namespace can attach with move_mount.</summary>
    public static UnixFd CloneMount(string path)
    {
        const int OPEN_TREE_CLONE = 1, OPEN_TREE_CLOEXEC = 0x80000;
        fixed (byte* p = Z(path))
            return new UnixFd((int)RawSyscall.Call($"open_tree({path})", Sysno.open_tree, FileIo.AT_FDCWD, (long)p, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC));
    }

    private static void Call(string name, long nr, string path, long a2, long a3 = 0, long a4 = 0)
    {
        fixed (byte* p = Z(path))
            RawSyscall.Call(name, nr, FileIo.AT_FDCWD, (long)p, a2, a3, a4);
    }

    /// <summary>The extended attributes of a path (not followed), name → value; empty where the file system keeps
    /// none.</summary>
    public static List<(string Name, byte[] Value)> ListXattrs(string path)
    {
        var result = new List<(string, byte[])>();
        var z = Z(path);
        byte[] names = new byte[4096];
        long n;
        fixed (byte* p = z)
        fixed (byte* b = names)
            n = RawSyscall.TryCall(Sysno.llistxattr, (long)p, (long)b, names.Length);
        if (n == -Errnos.EOPNOTSUPP || n == 0)
            return result;
        if (n < 0)
            throw new SyscallException($"llistxattr({path})", (int)-n);
        foreach (var name in Encoding.UTF8.GetString(names, 0, (int)n).Split('\0', StringSplitOptions.RemoveEmptyEntries))
        {
            byte[] value = new byte[65536];
            long len;
            var zn = Z(name);
            fixed (byte* p = z)
            fixed (byte* np = zn)
            fixed (byte* v = value)
                len = RawSyscall.TryCall(Sysno.lgetxattr, (long)p, (long)np, (long)v, value.Length);
            if (len == -Errnos.ENODATA)
                continue;   // removed meanwhile
            if (len < 0)
                throw new SyscallException($"lgetxattr({path}, {name})", (int)-len);
            result.Add((name, value[..(int)len]));
        }
        return result;
    }

    public static void SetXattr(string path, string name, byte[] value)
    {
        long r;
        fixed (byte* p = Z(path))
        fixed (byte* np = Z(name))
        fixed (byte* v = value)
            r = RawSyscall.TryCall(Sysno.lsetxattr, (long)p, (long)np, (long)v, value.Length, 0);
        if (r < 0)
            throw new SyscallException($"lsetxattr({path}, {name})", (int)-r);
    }

    private static byte[] Z(string s) => Encoding.UTF8.GetBytes(s + "\0");
}
