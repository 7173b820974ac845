using System.Buffers.Binary;
using System.Globalization;
using Crisp.Images.Proto;

namespace Crisp.Resources.Files.Locks;

/// <summary>One lock as fdinfo's "lock:" line shows it ("1: POSIX  ADVISORY  WRITE 42 fe:00:123 10 19",
/// "1: LEASE  ACTIVE    READ 42 fe:00:123 0 EOF"), and its file_lock_entry encoding (CRIU's file-lock.h: flag
/// FL_POSIX/FL_FLOCK/FL_OFD/FL_LEASE, type F_RDLCK/F_WRLCK for every flavour, len 0 for "to EOF").</summary>
public sealed record FileLock(string Kind, string Mode, string Access, int Pid, string DevIno, long Start, long End)
{
    public const uint FL_POSIX = 1, FL_FLOCK = 2, FL_OFD = 4, FL_LEASE = 8;
    public const int F_RDLCK = 0, F_WRLCK = 1;

    /// <summary>Parses the value of a "lock:" fdinfo line; null when it is not one.</summary>
    public static FileLock? Parse(string line)
    {
        var w = line.Split((char[])[' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
        if (w.Length < 8 || !w[0].EndsWith(':'))
            return null;
        long end = w[7] == "EOF" ? -1 : long.Parse(w[7], CultureInfo.InvariantCulture);
        return new FileLock(w[1], w[2], w[3], int.Parse(w[4], CultureInfo.InvariantCulture), w[5],
            long.Parse(w[6], CultureInfo.InvariantCulture), end);
    }

    public override string ToString() => $"{Kind} {Access} [{Start}, {(End < 0 ? "EOF" : End)}]";

    public uint Flag => Kind switch
    {
        "POSIX" => FL_POSIX,
        "FLOCK" => FL_FLOCK,
        "OFDLCK" => FL_OFD,
        "LEASE" => FL_LEASE,
        _ => 0,
    };

    /// <summary>Can crisp take this lock again? Advisory locks and active leases can; a lease being broken
    /// (BREAKING, or the BREAKER an opener waits on) is a moment of a conflict with another open, which a
    /// restore cannot make happen again the same way.</summary>
    public bool Supported => (Access is "READ" or "WRITE") && (Flag == FL_LEASE ? Mode == "ACTIVE" : Flag != 0 && Mode == "ADVISORY");

    public file_lock_entry ToEntry(int pid, int fd) => new()
    {
        Flag = Flag,
        Type = Access == "WRITE" ? (uint)F_WRLCK : F_RDLCK,
        Pid = pid,
        Fd = fd,
        Start = Start,
        Len = End < 0 ? 0 : End - Start + 1,
    };

    /// <summary>struct flock (x86-64: short type, short whence, off_t start, off_t len, pid_t pid; 32 bytes).</summary>
    public static byte[] Flock(file_lock_entry e)
    {
        var b = new byte[32];
        BinaryPrimitives.WriteInt16LittleEndian(b, (short)e.Type);
        BinaryPrimitives.WriteInt16LittleEndian(b.AsSpan(2), 0);   // SEEK_SET
        BinaryPrimitives.WriteInt64LittleEndian(b.AsSpan(8), e.Start);
        BinaryPrimitives.WriteInt64LittleEndian(b.AsSpan(16), e.Len);
        return b;
    }
}
