using System.Text;

namespace Crisp.Linux;

/// <summary>POSIX message queue syscalls (mq_overview(7)) on the calling thread's IPC namespace. Names are given
/// as the user sees them ("/NAME"); the syscall takes them without the slash, as glibc passes them.</summary>
public static unsafe class PosixMq
{
    /// <summary>struct mq_attr: flags, maxmsg, msgsize, curmsgs (then four reserved longs).</summary>
    public readonly record struct Attr(long Flags, long MaxMsg, long MsgSize, long CurMsgs);

    public static UnixFd Open(string name, int flags, uint mode = 0, Attr? create = null)
    {
        byte[] bare = Encoding.UTF8.GetBytes(name.TrimStart('/') + "\0");
        long* attr = stackalloc long[8];
        if (create is { } a)
        {
            attr[1] = a.MaxMsg;
            attr[2] = a.MsgSize;
        }
        long fd;
        fixed (byte* n = bare)
            fd = RawSyscall.TryCall(Sysno.mq_open, (long)n, flags, mode, create is null ? 0 : (long)attr);
        if (fd < 0)
            throw new SyscallException($"mq_open({name})", (int)-fd);
        return new UnixFd((int)fd);
    }

    /// <summary>Removes the queue's name; false when there is none.</summary>
    public static bool TryUnlink(string name)
    {
        byte[] bare = Encoding.UTF8.GetBytes(name.TrimStart('/') + "\0");
        fixed (byte* n = bare)
            return RawSyscall.TryCall(Sysno.mq_unlink, (long)n) == 0;
    }

    public static Attr GetAttr(int fd)
    {
        long* attr = stackalloc long[8];
        RawSyscall.Call("mq_getsetattr", Sysno.mq_getsetattr, fd, 0, (long)attr);
        return new Attr(attr[0], attr[1], attr[2], attr[3]);
    }

    /// <summary>The oldest message of the highest priority (the fd must be O_NONBLOCK: an empty queue is EAGAIN).</summary>
    public static (uint Prio, byte[] Data) Receive(int fd, long msgSize)
    {
        var buffer = new byte[msgSize];
        uint prio = 0;
        long n;
        fixed (byte* b = buffer)
            n = RawSyscall.TryCall(Sysno.mq_timedreceive, fd, (long)b, buffer.Length, (long)&prio, 0);
        if (n < 0)
            throw new SyscallException("mq_timedreceive", (int)-n);
        return (prio, buffer[..(int)n]);
    }

    public static void Send(int fd, byte[] data, uint prio)
    {
        long r;
        fixed (byte* b = data)
            r = RawSyscall.TryCall(Sysno.mq_timedsend, fd, (long)b, data.Length, prio, 0);
        if (r < 0)
            throw new SyscallException("mq_timedsend", (int)-r);
    }

    /// <summary>The pid registered for notification (mq_notify) on the queue, 0 for none: reading a queue's fd
    /// gives its status line ("QSIZE:… NOTIFY:… SIGNO:… NOTIFY_PID:…") and takes no message.</summary>
    public static int NotifyPid(int fd)
    {
        var buffer = new byte[256];
        int n = (int)FileIo.PRead(fd, buffer, 0);
        string status = Encoding.ASCII.GetString(buffer, 0, Math.Max(n, 0));
        int at = status.IndexOf("NOTIFY_PID:", StringComparison.Ordinal);
        return at < 0 ? 0 : int.Parse(status[(at + "NOTIFY_PID:".Length)..].Trim().Split(' ')[0]);
    }
}
