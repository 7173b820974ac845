using System.Buffers.Binary;
using Crisp.Images.Proto;
using Crisp.Linux;
using Crisp.Linux.Proc;
using Crisp.Restore;

namespace Crisp.Resources.Memory.Aio;

/// <summary>AIO contexts (io_setup), CRIU's way (criu/aio.c): the ring is the "/[aio]" mapping, whose address
/// is the context id. Dump: a VMA with status AIORING whose pages are stored whole (the kernel writes them,
/// no dirty tracking sees it) and an aio_ring_entry in mm.img (id = address, ring_len, nr_req as io_setup
/// was asked). Restore: the pages come back into a temporary anonymous mapping at the address; then the
/// task calls io_setup, submits no-op writes to /dev/null until the kernel's tail is the dumped one (the
/// kernel keeps its own copy of it), sets head, copies the events over and mremaps the new ring onto the
/// dumped address, which the kernel then takes as the context id.</summary>
public static class AioRings
{
    private const uint RingMagic = 0xa10a10a1;
    private const int HeaderSize = 32, EventSize = 32, IocbSize = 64;
    private const int IOCB_CMD_PWRITE = 1, MREMAP_MAYMOVE = 1, MREMAP_FIXED = 2;

    public static bool IsRing(MapsEntry m) => m.Path == "/[aio]" && m.Deleted;

    /// <summary>The ring's entry, after checking through /proc/PID/mem that it is a ring as the kernel makes one.</summary>
    public static aio_ring_entry Dump(int pid, DumpedVma vma)
    {
        string what = $"task {pid}: AIO ring at 0x{vma.Start:x}";
        ulong len = vma.End - vma.Start;
        var header = new byte[HeaderSize];
        using (var mem = File.OpenHandle(Procfs.Host.Path(pid, "mem")))
            if (RandomAccess.Read(mem, header, (long)vma.Start) != HeaderSize)
                throw new CrispException($"{what}: its header cannot be read");
        var (nr, head, tail, magic) = (U32(header, 4), U32(header, 8), U32(header, 12), U32(header, 16));
        uint events = (uint)((len - HeaderSize) / EventSize);
        if (magic != RingMagic || nr != events || head >= nr || tail >= nr || U32(header, 28) != HeaderSize)
            throw new CrispException($"{what}: not a ring as io_setup makes one (magic 0x{magic:x}, nr {nr} of {events}, head {head}, tail {tail})");
        // io_setup(n) makes room for 2 * n + 2 events, rounded up to whole pages: n back from the room (CRIU's estimate).
        return new aio_ring_entry { Id = vma.Start, RingLen = (uint)len, NrReq = (events - 2) / 2 };
    }

    /// <summary>Puts every ring of <paramref name="mm"/> back in the task (its memory is restored, the dumped
    /// ring's pages lie in an anonymous mapping at its address).</summary>
    public static void Restore(RestoreTask task, mm_entry mm, Log log)
    {
        foreach (var aio in mm.Aios)
            RestoreOne(task, aio, log);
    }

    private static void RestoreOne(RestoreTask task, aio_ring_entry aio, Log log)
    {
        var remote = task.Puppet.Remote;
        string what = $"task {task.Pid}: AIO ring at 0x{aio.Id:x}";
        if (aio.RingLen < HeaderSize + EventSize || aio.RingLen % 4096 != 0)
            throw new CrispException($"{what}: ring_len {aio.RingLen} is not a ring's size");
        var old = new byte[aio.RingLen];
        remote.ReadMemory(aio.Id, old);
        uint nr = U32(old, 4), head = U32(old, 8), tail = U32(old, 12);
        uint events = (uint)((aio.RingLen - HeaderSize) / EventSize);
        if (nr != events || head >= nr || tail >= nr)
            throw new CrispException($"{what}: the dumped ring has nr {nr} (its size holds {events}), head {head}, tail {tail}");

        ulong scratch = remote.PutOnScratch(new byte[8]);
        task.Call("io_setup", Sysno.io_setup, aio.NrReq, (long)scratch);
        var ctxBytes = new byte[8];
        remote.ReadMemory(scratch, ctxBytes);
        ulong ctx = BinaryPrimitives.ReadUInt64LittleEndian(ctxBytes);
        var header = new byte[HeaderSize];
        remote.ReadMemory(ctx, header);
        if (U32(header, 4) != nr)
        {
            remote.Syscall(Sysno.io_destroy, (long)ctx);
            throw new CrispException($"{what}: io_setup({aio.NrReq}) made a ring of {U32(header, 4)} events, not {nr} (a host with more CPUs makes bigger rings)");
        }
        if (head != 0 || tail != 0)
            MoveTail(task, ctx, nr, head, tail, what);
        remote.WriteMemory(ctx + HeaderSize, old.AsSpan(HeaderSize));
        long at = task.Call($"mremap(AIO ring to 0x{aio.Id:x})", Sysno.mremap, (long)ctx, (long)aio.RingLen, (long)aio.RingLen,
            MREMAP_MAYMOVE | MREMAP_FIXED, (long)aio.Id);
        if ((ulong)at != aio.Id)
            throw new CrispException($"{what}: mremap gave 0x{at:x}");
        log.Debug($"{what}: {nr} events, head {head}, tail {tail}");
    }

    /// <summary>The kernel's tail (its own copy, where the next completion goes) moves only by completions:
    /// no-op writes to /dev/null, submitted until it stands at the dumped tail, with head following (the
    /// events are consumed, the slots free) and left at the dumped head.</summary>
    private static void MoveTail(RestoreTask task, ulong ctx, uint nr, uint head, uint tail, string what)
    {
        var remote = task.Puppet.Remote;
        // A full turn when the tail has wrapped behind head, so the kernel's count of completions is right (CRIU).
        uint count = tail < head ? nr + tail : tail;
        // Scratch: /dev/null's path, one iocb, its byte, then the pointer array (at most nr - 1 in flight).
        const int PathAt = 0, IocbAt = 16, BufAt = IocbAt + IocbSize, ArrayAt = 128;
        int maxr = (int)Math.Min(Math.Min(count, nr - 1), (uint)(remote.ScratchDataSize - ArrayAt) / 8);
        var data = new byte[ArrayAt + 8 * maxr];
        "/dev/null\0"u8.CopyTo(data.AsSpan(PathAt));
        ulong scratch = remote.PutOnScratch(data);
        int fd = (int)task.Call("open(/dev/null) for AIO", Sysno.openat, -100, (long)scratch + PathAt, FileIo.O_WRONLY | FileIo.O_CLOEXEC);
        try
        {
            var iocb = data.AsSpan(IocbAt, IocbSize);
            BinaryPrimitives.WriteUInt16LittleEndian(iocb[16..], IOCB_CMD_PWRITE);
            BinaryPrimitives.WriteUInt32LittleEndian(iocb[20..], (uint)fd);
            BinaryPrimitives.WriteUInt64LittleEndian(iocb[24..], scratch + BufAt);
            BinaryPrimitives.WriteUInt64LittleEndian(iocb[32..], 1);
            for (int i = 0; i < maxr; i++)
                BinaryPrimitives.WriteUInt64LittleEndian(data.AsSpan(ArrayAt + 8 * i), scratch + IocbAt);
            remote.WriteMemory(scratch, data);
            var headBytes = new byte[4];
            for (uint done = 0; done < count;)
            {
                long n = task.Call("io_submit (moving the AIO tail)", Sysno.io_submit, (long)ctx, Math.Min(count - done, maxr), (long)scratch + ArrayAt);
                if (n <= 0)
                    throw new CrispException($"{what}: io_submit took no request at {done} of {count}");
                done += (uint)n;
                // Setting head is what io_getevents would do: it frees the slots for the next submissions.
                BinaryPrimitives.WriteUInt32LittleEndian(headBytes, done < head ? done : head);
                remote.WriteMemory(ctx + 8, headBytes);
            }
        }
        finally
        {
            remote.Syscall(Sysno.close, fd);
        }
        var now = new byte[HeaderSize];
        remote.ReadMemory(ctx, now);
        if (U32(now, 12) != tail)
            throw new CrispException($"{what}: the kernel's tail is {U32(now, 12)} after {count} no-op writes, not {tail}");
    }

    private static uint U32(ReadOnlySpan<byte> b, int at) => BinaryPrimitives.ReadUInt32LittleEndian(b[at..]);
}
