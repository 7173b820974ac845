using System.Buffers.Binary;
using Crisp.Images.Proto;

namespace Crisp.Resources.Timers;

/// <summary>The kernel's timer structs as bytes on a task's scratch page (x86-64): itimerval (two timevals),
/// itimerspec (two timespecs), sigevent (value, signo, notify, tid; 64 bytes).</summary>
internal static class TimerStructs
{
    public const int ITimerValSize = 32, ITimerSpecSize = 32, SigEventSize = 64;

    /// <summary>itimerval → CRIU's itimer_entry (i* = interval, v* = value left).</summary>
    public static itimer_entry ReadITimerVal(ReadOnlySpan<byte> b) => new()
    {
        Isec = BinaryPrimitives.ReadUInt64LittleEndian(b),
        Iusec = BinaryPrimitives.ReadUInt64LittleEndian(b[8..]),
        Vsec = BinaryPrimitives.ReadUInt64LittleEndian(b[16..]),
        Vusec = BinaryPrimitives.ReadUInt64LittleEndian(b[24..]),
    };

    public static byte[] ITimerVal(itimer_entry e) => Four(e.Isec, e.Iusec, e.Vsec, e.Vusec);

    /// <summary>itimerspec → (interval, value left) into a posix_timer_entry.</summary>
    public static void ReadITimerSpec(ReadOnlySpan<byte> b, posix_timer_entry e)
    {
        e.Isec = BinaryPrimitives.ReadUInt64LittleEndian(b);
        e.Insec = BinaryPrimitives.ReadUInt64LittleEndian(b[8..]);
        e.Vsec = BinaryPrimitives.ReadUInt64LittleEndian(b[16..]);
        e.Vnsec = BinaryPrimitives.ReadUInt64LittleEndian(b[24..]);
    }

    public static byte[] ITimerSpec(posix_timer_entry e) => Four(e.Isec, e.Insec, e.Vsec, e.Vnsec);

    public static byte[] SigEvent(posix_timer_entry e)
    {
        var b = new byte[SigEventSize];
        BinaryPrimitives.WriteUInt64LittleEndian(b, e.SivalPtr);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(8), e.SiSigno);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(12), e.ItSigevNotify);
        if (e.HasNotifyThreadId)
            BinaryPrimitives.WriteInt32LittleEndian(b.AsSpan(16), e.NotifyThreadId);
        return b;
    }

    public static bool IsZero(itimer_entry e) => (e.Isec | e.Iusec | e.Vsec | e.Vusec) == 0;

    private static byte[] Four(ulong a, ulong b, ulong c, ulong d)
    {
        var bytes = new byte[32];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, a);
        BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(8), b);
        BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(16), c);
        BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(24), d);
        return bytes;
    }
}
