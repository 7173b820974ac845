using System.Buffers.Binary;
using Crisp.Linux;

namespace Crisp.Resources.Files;

/// <summary>What fstat(2) says about an fd (the fields files need).</summary>
public readonly record struct FileStat(ulong Dev, ulong Ino, uint Mode, ulong Rdev, long Size)
{
    public const uint S_IFMT = 0xf000, S_IFIFO = 0x1000, S_IFCHR = 0x2000, S_IFDIR = 0x4000, S_IFBLK = 0x6000,
        S_IFREG = 0x8000, S_IFLNK = 0xa000, S_IFSOCK = 0xc000;

    public uint Type => Mode & S_IFMT;
    public uint Major => (uint)(((Rdev >> 8) & 0xfff) | ((Rdev >> 32) & ~0xfffUL));
}

/// <summary>fcntl/fstat/tee on crisp's own fds, by raw syscall (files are the only users).</summary>
public static unsafe class FdOps
{
    public const int F_GETFD = 1, F_SETFD = 2, F_GETFL = 3, F_SETFL = 4, F_SETSIG = 10, F_GETSIG = 11,
        F_SETOWN_EX = 15, F_GETOWN_EX = 16, F_GETOWNER_UIDS = 17, F_DUPFD_CLOEXEC = 1030, F_SETPIPE_SZ = 1031, F_GETPIPE_SZ = 1032;
    public const int FD_CLOEXEC = 1;
    /// <summary>Status flags F_SETFL can change (CRIU's SETFL_MASK).</summary>
    public const int SetflMask = FileIo.O_APPEND | FileIo.O_ASYNC | FileIo.O_NONBLOCK | FileIo.O_DIRECT | FileIo.O_NOATIME;
    private const int SPLICE_F_NONBLOCK = 2;

    public static FileStat Stat(int fd)
    {
        byte* st = stackalloc byte[144];
        RawSyscall.Call("fstat", Sysno.fstat, fd, (long)st);
        var s = new ReadOnlySpan<byte>(st, 144);
        return new FileStat(
            Dev: BinaryPrimitives.ReadUInt64LittleEndian(s),
            Ino: BinaryPrimitives.ReadUInt64LittleEndian(s[8..]),
            Mode: BinaryPrimitives.ReadUInt32LittleEndian(s[24..]),
            Rdev: BinaryPrimitives.ReadUInt64LittleEndian(s[40..]),
            Size: BinaryPrimitives.ReadInt64LittleEndian(s[48..]));
    }

    public static int Fcntl(int fd, int cmd, long arg = 0) => (int)RawSyscall.Call($"fcntl({cmd})", Sysno.fcntl, fd, cmd, arg);

    /// <summary>Sets the F_SETFL-changeable status flags of a description to those in <paramref name="flags"/>.</summary>
    public static void SetStatusFlags(int fd, int flags)
    {
        int now = Fcntl(fd, F_GETFL);
        int want = (flags & SetflMask) | (now & ~SetflMask);
        if (want != now)
            Fcntl(fd, F_SETFL, want);
    }

    /// <summary>F_GETOWN_EX + F_GETSIG as (pid type, pid, signal).</summary>
    public static (int Type, int Pid, int Signal) GetOwner(int fd)
    {
        int* ex = stackalloc int[2];
        Fcntl(fd, F_GETOWN_EX, (long)ex);
        return (ex[0], ex[1], Fcntl(fd, F_GETSIG));
    }

    /// <summary>The real and effective uid recorded with the owner when it was set (F_GETOWNER_UIDS, a
    /// CONFIG_CHECKPOINT_RESTORE fcntl): CRIU restores the owner under them, so they must be in fown_entry.</summary>
    public static (uint Uid, uint Euid) GetOwnerUids(int fd)
    {
        uint* uids = stackalloc uint[2];
        Fcntl(fd, F_GETOWNER_UIDS, (long)uids);
        return (uids[0], uids[1]);
    }

    public static void SetOwner(int fd, int type, int pid, int signal)
    {
        int* ex = stackalloc int[2];
        ex[0] = type;
        ex[1] = pid;
        Fcntl(fd, F_SETOWN_EX, (long)ex);
        if (signal != 0)
            Fcntl(fd, F_SETSIG, signal);
    }

    /// <summary>tee(2) without blocking: bytes copied, 0 when the pipe is empty.</summary>
    public static long TeeNonBlocking(int fdIn, int fdOut, long length)
    {
        long r = RawSyscall.TryCall(Sysno.tee, fdIn, fdOut, length, SPLICE_F_NONBLOCK);
        if (r == -Errnos.EAGAIN)
            return 0;
        if (r < 0)
            throw new SyscallException("tee", (int)-r);
        return r;
    }

    /// <summary>pipe2(O_CLOEXEC): (read end, write end).</summary>
    public static (UnixFd Read, UnixFd Write) Pipe()
    {
        int* fds = stackalloc int[2];
        RawSyscall.Call("pipe2", Sysno.pipe2, (long)fds, FileIo.O_CLOEXEC);
        return (new UnixFd(fds[0]), new UnixFd(fds[1]));
    }
}
