using System.Buffers.Binary;

namespace Crisp.Linux;

/// <summary>Creating the kernel's anonymous-inode objects crisp restores: eventfd, signalfd, timerfd,
/// epoll, inotify and fanotify. Every fd returned is O_CLOEXEC and crisp's to close.</summary>
public static unsafe class EventObjects
{
    public const int EFD_SEMAPHORE = 1;
    public const int TFD_TIMER_ABSTIME = 1, TFD_TIMER_CANCEL_ON_SET = 2;
    /// <summary>_IOW('T', 0, u64): sets a timerfd's expiration count (CONFIG_CHECKPOINT_RESTORE).</summary>
    public const long TFD_IOC_SET_TICKS = 0x40085400;
    public const int EPOLL_CTL_ADD = 1, EPOLL_CTL_DEL = 2, EPOLL_CTL_MOD = 3;

    public static UnixFd EventFd(ulong counter, int flags)
        => new((int)RawSyscall.Call("eventfd2", Sysno.eventfd2, (long)counter, flags | FileIo.O_CLOEXEC));

    public static UnixFd SignalFd(ulong mask, int flags)
    {
        ulong m = mask;
        return new((int)RawSyscall.Call("signalfd4", Sysno.signalfd4, -1, (long)&m, 8, flags | FileIo.O_CLOEXEC));
    }

    public static UnixFd TimerFd(int clockId, int flags)
        => new((int)RawSyscall.Call($"timerfd_create({clockId})", Sysno.timerfd_create, clockId, flags | FileIo.O_CLOEXEC));

    /// <summary>timerfd_settime with (value, interval) in seconds and nanoseconds.</summary>
    public static void TimerSet(int fd, int flags, (long Sec, long Nsec) value, (long Sec, long Nsec) interval)
    {
        long* its = stackalloc long[4];
        its[0] = interval.Sec;
        its[1] = interval.Nsec;
        its[2] = value.Sec;
        its[3] = value.Nsec;
        RawSyscall.Call("timerfd_settime", Sysno.timerfd_settime, fd, flags, (long)its, 0);
    }

    public static void TimerSetTicks(int fd, ulong ticks)
    {
        ulong t = ticks;
        RawSyscall.Call("ioctl(TFD_IOC_SET_TICKS)", Sysno.ioctl, fd, TFD_IOC_SET_TICKS, (long)&t);
    }

    /// <summary>clock_gettime as (seconds, nanoseconds).</summary>
    public static (long Sec, long Nsec) Now(int clockId)
    {
        long* ts = stackalloc long[2];
        RawSyscall.Call("clock_gettime", Sysno.clock_gettime, clockId, (long)ts);
        return (ts[0], ts[1]);
    }

    public static UnixFd Epoll(int flags)
        => new((int)RawSyscall.Call("epoll_create1", Sysno.epoll_create1, flags | FileIo.O_CLOEXEC));

    /// <summary>struct epoll_event as x86-64 packs it: u32 events, then u64 data at offset 4 (12 bytes).</summary>
    public static byte[] EpollEvent(uint events, ulong data)
    {
        var e = new byte[12];
        BinaryPrimitives.WriteUInt32LittleEndian(e, events);
        BinaryPrimitives.WriteUInt64LittleEndian(e.AsSpan(4), data);
        return e;
    }

    public static UnixFd Inotify(int flags)
        => new((int)RawSyscall.Call("inotify_init1", Sysno.inotify_init1, flags | FileIo.O_CLOEXEC));

    /// <summary>inotify_add_watch on a path; returns the watch descriptor.</summary>
    public static int InotifyAddWatch(int fd, string path, uint mask)
    {
        var bytes = System.Text.Encoding.UTF8.GetBytes(path + "\0");
        fixed (byte* p = bytes)
            return (int)RawSyscall.Call($"inotify_add_watch({path})", Sysno.inotify_add_watch, fd, (long)p, mask);
    }

    public static void InotifyRmWatch(int fd, int wd) => RawSyscall.Call("inotify_rm_watch", Sysno.inotify_rm_watch, fd, wd);

    /// <summary>fanotify_init(2) with FAN_CLOEXEC; <paramref name="eventFlags"/> are the open flags of event fds.</summary>
    public static UnixFd Fanotify(uint flags, uint eventFlags)
        => new((int)RawSyscall.Call("fanotify_init", Sysno.fanotify_init, flags | 1 /* FAN_CLOEXEC */, eventFlags));

    /// <summary>fanotify_mark(2) on a path (AT_FDCWD).</summary>
    public static void FanotifyMark(int fd, uint flags, ulong mask, string path)
    {
        var bytes = System.Text.Encoding.UTF8.GetBytes(path + "\0");
        fixed (byte* p = bytes)
            RawSyscall.Call($"fanotify_mark({path}, {flags:x}, {mask:x})", Sysno.fanotify_mark, fd, flags, (long)mask, FileIo.AT_FDCWD, (long)p);
    }
}
