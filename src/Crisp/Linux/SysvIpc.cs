using System.Buffers.Binary;

namespace Crisp.Linux;

/// <summary>System V IPC calls (shm, sem, msg) by raw syscall, with the x86-64 kernel layouts of
/// ipc64_perm / shmid64_ds / semid64_ds / msqid64_ds (x86-64 always uses the IPC_64 forms). They act on the
/// IPC namespace of the calling thread, so a thread that setns'ed into another one sees that one.</summary>
public static unsafe class SysvIpc
{

    public const int EIDRM = 43;
    public const int IPC_CREAT = 0x200, IPC_EXCL = 0x400, IPC_NOWAIT = 0x800, IPC_PRIVATE = 0;
    public const int IPC_RMID = 0, IPC_SET = 1, IPC_STAT = 2;
    public const int SHM_LOCK = 11, SHM_UNLOCK = 12, SHM_INFO = 14, SHM_STAT_ANY = 15;
    public const int SEM_INFO = 19, SEM_STAT_ANY = 20, GETALL = 13, SETALL = 17;
    public const int MSG_INFO = 12, MSG_STAT_ANY = 13, MSG_COPY = 0x4000;
    public const int SHM_RDONLY = 0x1000, SHM_EXEC = 0x8000;
    /// <summary>Mode bits the kernel keeps beside the permissions: marked for removal, locked in memory.</summary>
    public const uint SHM_DEST = 0x200, SHM_LOCKED = 0x400;

    /// <summary>ipc64_perm plus the fields crisp reads of each object's *id64_ds.</summary>
    public sealed record Perm(int Key, uint Uid, uint Gid, uint Cuid, uint Cgid, uint Mode);

    public sealed record ShmInfo(int Id, Perm Perm, ulong Size, ulong Attached);
    public sealed record SemInfo(int Id, Perm Perm, uint Nsems);
    public sealed record MsgInfo(int Id, Perm Perm, ulong Qbytes, ulong Qnum);

    private const int PermSize = 48, ShmDsSize = 112, SemDsSize = 104, MsgDsSize = 120;

    private static Perm ReadPerm(ReadOnlySpan<byte> ds) => new(
        BinaryPrimitives.ReadInt32LittleEndian(ds), BinaryPrimitives.ReadUInt32LittleEndian(ds[4..]),
        BinaryPrimitives.ReadUInt32LittleEndian(ds[8..]), BinaryPrimitives.ReadUInt32LittleEndian(ds[12..]),
        BinaryPrimitives.ReadUInt32LittleEndian(ds[16..]), BinaryPrimitives.ReadUInt16LittleEndian(ds[20..]));

    /// <summary>IPC_SET takes uid, gid and the low 9 mode bits from the perm part.</summary>
    private static void WritePerm(Span<byte> ds, uint uid, uint gid, uint mode)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(ds[4..], uid);
        BinaryPrimitives.WriteUInt32LittleEndian(ds[8..], gid);
        BinaryPrimitives.WriteUInt16LittleEndian(ds[20..], (ushort)(mode & 0x1ff));
    }

    private static long Ctl(long nr, int id, int cmd, Span<byte> ds, string name)
    {
        fixed (byte* p = ds)
            return RawSyscall.Call(name, nr, id, cmd, (long)p);
    }

    private static long TryCtl(long nr, int id, int cmd, Span<byte> ds)
    {
        fixed (byte* p = ds)
            return RawSyscall.TryCall(nr, id, cmd, (long)p);
    }

    // --- shared memory ---

    /// <summary>Highest index in use (SHM_INFO), -1 when none was ever used.</summary>
    public static int ShmMaxIndex() => (int)Ctl(Sysno.shmctl, 0, SHM_INFO, stackalloc byte[ShmDsSize], "shmctl(SHM_INFO)");

    /// <summary>The segment at kernel index <paramref name="index"/> (SHM_STAT_ANY), null when the slot is empty.</summary>
    public static ShmInfo? ShmAtIndex(int index) => ShmStat(index, SHM_STAT_ANY);

    /// <summary>IPC_STAT of segment <paramref name="id"/>; null when there is none (EINVAL/EIDRM).</summary>
    public static ShmInfo? ShmById(int id) => ShmStat(id, IPC_STAT);

    private static ShmInfo? ShmStat(int idOrIndex, int cmd)
    {
        Span<byte> ds = stackalloc byte[ShmDsSize];
        long r = TryCtl(Sysno.shmctl, idOrIndex, cmd, ds);
        if (r is -Errnos.EINVAL or -SysvIpc.EIDRM)
            return null;
        if (r < 0)
            throw new SyscallException($"shmctl({idOrIndex}, {cmd})", (int)-r);
        int id = cmd == IPC_STAT ? idOrIndex : (int)r;
        return new ShmInfo(id, ReadPerm(ds), BinaryPrimitives.ReadUInt64LittleEndian(ds[48..]), BinaryPrimitives.ReadUInt64LittleEndian(ds[88..]));
    }

    public static int ShmGet(int key, ulong size, int flags) => (int)RawSyscall.Call("shmget", Sysno.shmget, key, (long)size, flags);

    public static void ShmSet(int id, uint uid, uint gid, uint mode)
    {
        Span<byte> ds = stackalloc byte[ShmDsSize];
        Ctl(Sysno.shmctl, id, IPC_STAT, ds, "shmctl(IPC_STAT)");
        WritePerm(ds, uid, gid, mode);
        Ctl(Sysno.shmctl, id, IPC_SET, ds, "shmctl(IPC_SET)");
    }

    public static void ShmCtl(int id, int cmd, string name) => RawSyscall.Call(name, Sysno.shmctl, id, cmd, 0);
    public static long TryShmCtl(int id, int cmd) => RawSyscall.TryCall(Sysno.shmctl, id, cmd, 0);

    /// <summary>Attaches segment <paramref name="id"/> somewhere in crisp; returns its address.</summary>
    public static nint ShmAttach(int id, int flags) => (nint)RawSyscall.Call("shmat", Sysno.shmat, id, 0, flags);
    public static void ShmDetach(nint at) => RawSyscall.Call("shmdt", Sysno.shmdt, at);

    // --- semaphores ---

    public static int SemMaxIndex()
    {
        Span<byte> info = stackalloc byte[SemDsSize];   // struct seminfo is smaller
        fixed (byte* p = info)
            return (int)RawSyscall.Call("semctl(SEM_INFO)", Sysno.semctl, 0, 0, SEM_INFO, (long)p);
    }

    public static SemInfo? SemAtIndex(int index)
    {
        Span<byte> ds = stackalloc byte[SemDsSize];
        fixed (byte* p = ds)
        {
            long r = RawSyscall.TryCall(Sysno.semctl, index, 0, SEM_STAT_ANY, (long)p);
            if (r is -Errnos.EINVAL or -SysvIpc.EIDRM)
                return null;
            if (r < 0)
                throw new SyscallException("semctl(SEM_STAT_ANY)", (int)-r);
            return new SemInfo((int)r, ReadPerm(ds), (uint)BinaryPrimitives.ReadUInt64LittleEndian(ds[80..]));
        }
    }

    public static ushort[] SemGetAll(int id, uint nsems)
    {
        var values = new ushort[nsems];
        fixed (ushort* p = values)
            RawSyscall.Call("semctl(GETALL)", Sysno.semctl, id, 0, GETALL, (long)p);
        return values;
    }

    public static void SemSetAll(int id, ushort[] values)
    {
        fixed (ushort* p = values)
            RawSyscall.Call("semctl(SETALL)", Sysno.semctl, id, 0, SETALL, (long)p);
    }

    public static int SemGet(int key, uint nsems, int flags) => (int)RawSyscall.Call("semget", Sysno.semget, key, nsems, flags);

    public static void SemSet(int id, uint uid, uint gid, uint mode)
    {
        Span<byte> ds = stackalloc byte[SemDsSize];
        fixed (byte* p = ds)
        {
            RawSyscall.Call("semctl(IPC_STAT)", Sysno.semctl, id, 0, IPC_STAT, (long)p);
            WritePerm(ds, uid, gid, mode);
            RawSyscall.Call("semctl(IPC_SET)", Sysno.semctl, id, 0, IPC_SET, (long)p);
        }
    }

    // --- message queues ---

    public static int MsgMaxIndex() => (int)Ctl(Sysno.msgctl, 0, MSG_INFO, stackalloc byte[MsgDsSize], "msgctl(MSG_INFO)");

    public static MsgInfo? MsgAtIndex(int index)
    {
        Span<byte> ds = stackalloc byte[MsgDsSize];
        long r = TryCtl(Sysno.msgctl, index, MSG_STAT_ANY, ds);
        if (r is -Errnos.EINVAL or -SysvIpc.EIDRM)
            return null;
        if (r < 0)
            throw new SyscallException("msgctl(MSG_STAT_ANY)", (int)-r);
        return new MsgInfo((int)r, ReadPerm(ds), BinaryPrimitives.ReadUInt64LittleEndian(ds[88..]), BinaryPrimitives.ReadUInt64LittleEndian(ds[80..]));
    }

    public static int MsgGet(int key, int flags) => (int)RawSyscall.Call("msgget", Sysno.msgget, key, flags);

    /// <summary>IPC_SET of owner and mode; queue size too when <paramref name="qbytes"/> is given. Returns -errno.</summary>
    public static long TryMsgSet(int id, uint uid, uint gid, uint mode, ulong? qbytes)
    {
        Span<byte> ds = stackalloc byte[MsgDsSize];
        Ctl(Sysno.msgctl, id, IPC_STAT, ds, "msgctl(IPC_STAT)");
        WritePerm(ds, uid, gid, mode);
        if (qbytes is { } q)
            BinaryPrimitives.WriteUInt64LittleEndian(ds[88..], q);
        long r = TryCtl(Sysno.msgctl, id, IPC_SET, ds);
        return r < 0 ? r : 0;
    }

    /// <summary>A copy of message number <paramref name="index"/> (MSG_COPY: the queue is left as it is):
    /// its type and text.</summary>
    public static (long Type, byte[] Text) MsgCopy(int id, int index, int maxText)
    {
        var buffer = new byte[8 + maxText];
        fixed (byte* p = buffer)
        {
            long n = RawSyscall.Call("msgrcv(MSG_COPY)", Sysno.msgrcv, id, (long)p, maxText, index, IPC_NOWAIT | MSG_COPY);
            return (BinaryPrimitives.ReadInt64LittleEndian(buffer), buffer.AsSpan(8, (int)n).ToArray());
        }
    }

    public static void MsgSend(int id, long type, ReadOnlySpan<byte> text)
    {
        var buffer = new byte[8 + text.Length];
        BinaryPrimitives.WriteInt64LittleEndian(buffer, type);
        text.CopyTo(buffer.AsSpan(8));
        fixed (byte* p = buffer)
            RawSyscall.Call("msgsnd", Sysno.msgsnd, id, (long)p, text.Length, IPC_NOWAIT);
    }
}
