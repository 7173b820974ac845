using System.Buffers.Binary;

namespace Crisp.Linux;

/// <summary>userfaultfd(2) ioctls a lazy-pages daemon runs on a userfaultfd it was handed (the fd belongs to another
/// process's mm: UFFDIO_COPY fills that mm), and the 32-byte struct uffd_msg it reads. Each call returns -errno
/// instead of throwing: EEXIST, ENOENT, ESRCH and EAGAIN are ordinary answers here.</summary>
public static unsafe class Userfaultfd
{
    public const ulong UFFD_API = 0xAA;
    public const ulong FEATURE_EVENT_FORK = 1 << 1, FEATURE_EVENT_REMAP = 1 << 2, FEATURE_EVENT_REMOVE = 1 << 3, FEATURE_EVENT_UNMAP = 1 << 6;
    public const long UFFDIO_API = 0xC018AA3F;        // _IOWR(0xAA, 0x3F, struct uffdio_api)
    public const long UFFDIO_REGISTER = 0xC020AA00;   // _IOWR(0xAA, 0x00, struct uffdio_register)
    public const long UFFDIO_COPY = 0xC028AA03;       // _IOWR(0xAA, 0x03, struct uffdio_copy)
    public const long UFFDIO_ZEROPAGE = 0xC020AA04;   // _IOWR(0xAA, 0x04, struct uffdio_zeropage)
    public const long UFFDIO_WAKE = 0x8010AA02;       // _IOR(0xAA, 0x02, struct uffdio_range)
    public const long UFFDIO_WRITEPROTECT = 0xC018AA06;   // _IOWR(0xAA, 0x06, struct uffdio_writeprotect)
    public const ulong REGISTER_MODE_MISSING = 1, REGISTER_MODE_WP = 2;
    public const byte EVENT_PAGEFAULT = 0x12, EVENT_FORK = 0x13, EVENT_REMAP = 0x14, EVENT_REMOVE = 0x15, EVENT_UNMAP = 0x16;
    public const int MsgSize = 32;

    /// <summary>UFFDIO_COPY of <paramref name="src"/> to <paramref name="dst"/> (waking the threads waiting there).
    /// Returns the bytes copied (all of them on success; fewer when it stopped at a page already present), or
    /// -errno when nothing was copied (EEXIST: the first page is present; ENOENT: not registered any more;
    /// ESRCH: the process is gone; EAGAIN: the address space is changing, read the events first).</summary>
    public static long Copy(int uffd, ulong dst, ReadOnlySpan<byte> src)
    {
        fixed (byte* s = src)
        {
            ulong* arg = stackalloc ulong[5] { dst, (ulong)s, (ulong)src.Length, 0, 0 };
            long r = RawSyscall.TryCall(Sysno.ioctl, uffd, UFFDIO_COPY, (long)arg);
            long copied = (long)arg[4];
            return r == 0 ? src.Length : copied > 0 ? copied : r;
        }
    }

    /// <summary>UFFDIO_ZEROPAGE: maps the zero page at [dst, dst+len). Bytes done, or -errno as <see cref="Copy"/>.</summary>
    public static long ZeroPage(int uffd, ulong dst, ulong len)
    {
        ulong* arg = stackalloc ulong[4] { dst, len, 0, 0 };
        long r = RawSyscall.TryCall(Sysno.ioctl, uffd, UFFDIO_ZEROPAGE, (long)arg);
        long done = (long)arg[3];
        return r == 0 ? (long)len : done > 0 ? done : r;
    }

    /// <summary>UFFDIO_REGISTER of [start, start+len) for write-protection, from any process holding the fd (the ranges
    /// are the fd's mm's): 0, or -errno (EBUSY: another userfaultfd has it; EINVAL: a kind of memory it cannot track).</summary>
    public static long RegisterWriteProtect(int uffd, ulong start, ulong len)
    {
        ulong* arg = stackalloc ulong[4] { start, len, REGISTER_MODE_WP, 0 };
        return RawSyscall.TryCall(Sysno.ioctl, uffd, UFFDIO_REGISTER, (long)arg);
    }

    /// <summary>UFFDIO_WRITEPROTECT of [start, start+len) off, without waking anyone (async write-protection has no
    /// waiters): with async tracking, the pages then read as written (PAGE_IS_WRITTEN) again. 0, or -errno (ENOENT: a
    /// part of the range is not registered any more).</summary>
    public static long Unprotect(int uffd, ulong start, ulong len)
    {
        const ulong ModeDontWake = 2;
        ulong* arg = stackalloc ulong[3] { start, len, ModeDontWake };
        return RawSyscall.TryCall(Sysno.ioctl, uffd, UFFDIO_WRITEPROTECT, (long)arg);
    }

    /// <summary>UFFDIO_WAKE: wakes threads waiting on a page that became present meanwhile.</summary>
    public static long Wake(int uffd, ulong start, ulong len)
    {
        ulong* arg = stackalloc ulong[2] { start, len };
        return RawSyscall.TryCall(Sysno.ioctl, uffd, UFFDIO_WAKE, (long)arg);
    }

    /// <summary>Reads pending messages (non-blocking fd): how many whole messages, 0 when none, -errno.</summary>
    public static int ReadMessages(int uffd, Span<byte> buffer)
    {
        fixed (byte* b = buffer)
        {
            long r = RawSyscall.TryCall(Sysno.read, uffd, (long)b, buffer.Length - buffer.Length % MsgSize);
            if (r == -Errnos.EAGAIN)
                return 0;
            return r < 0 ? (int)r : (int)(r / MsgSize);
        }
    }

    /// <summary>One struct uffd_msg: the event, then (pagefault) flags and address, (remove/unmap) start and end, or
    /// (remap) from, to and len.</summary>
    public readonly record struct Message(byte Event, ulong Arg0, ulong Arg1, ulong Arg2)
    {
        public static Message Read(ReadOnlySpan<byte> m) =>
            new(m[0], BinaryPrimitives.ReadUInt64LittleEndian(m[8..]), BinaryPrimitives.ReadUInt64LittleEndian(m[16..]),
                BinaryPrimitives.ReadUInt64LittleEndian(m[24..]));

        /// <summary>The faulting address (EVENT_PAGEFAULT).</summary>
        public ulong Address => Arg1;
    }
}
