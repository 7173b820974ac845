using System.Buffers.Binary;
using Crisp.Images.Proto;
using Crisp.Linux;
using static Crisp.Linux.SocketCalls;

namespace Crisp.Resources.Files.Sockets;

/// <summary>SOL_SOCKET options of any socket — CRIU's sk_opts_entry (sockets.c).</summary>
public static class SocketOptions
{
    private const int SOCK_SNDBUF_LOCK = 1, SOCK_RCVBUF_LOCK = 2, IfNameSize = 16;

    /// <param name="what">The socket as errors name it (task, fd, kind).</param>
    public static sk_opts_entry Dump(int fd, string what)
    {
        var (sndSec, sndUsec) = Timeout(fd, SO_SNDTIMEO);
        var (rcvSec, rcvUsec) = Timeout(fd, SO_RCVTIMEO);
        var o = new sk_opts_entry
        {
            // getsockopt reports the kernel's doubled value; restore halves it again.
            SoSndbuf = (uint)GetInt(fd, SOL_SOCKET, SO_SNDBUF),
            SoRcvbuf = (uint)GetInt(fd, SOL_SOCKET, SO_RCVBUF),
            SoSndTmoSec = sndSec,
            SoSndTmoUsec = sndUsec,
            SoRcvTmoSec = rcvSec,
            SoRcvTmoUsec = rcvUsec,
            Reuseaddr = GetInt(fd, SOL_SOCKET, SO_REUSEADDR) != 0,
            SoPriority = (uint)GetInt(fd, SOL_SOCKET, SO_PRIORITY),
            SoRcvlowat = (uint)GetInt(fd, SOL_SOCKET, SO_RCVLOWAT),
            SoMark = (uint)GetInt(fd, SOL_SOCKET, SO_MARK),
            // Newer kernels answer EOPNOTSUPP for these on inet sockets: they only mean something for unix.
            SoPasscred = GetIntOrZero(fd, SO_PASSCRED) != 0,
            SoPasssec = GetIntOrZero(fd, SO_PASSSEC) != 0,
            SoDontroute = GetInt(fd, SOL_SOCKET, SO_DONTROUTE) != 0,
            SoNoCheck = GetInt(fd, SOL_SOCKET, SO_NO_CHECK) != 0,
            SoReuseport = GetInt(fd, SOL_SOCKET, SO_REUSEPORT) != 0,
            SoBroadcast = GetInt(fd, SOL_SOCKET, SO_BROADCAST) != 0,
            SoKeepalive = GetInt(fd, SOL_SOCKET, SO_KEEPALIVE) != 0,
            SoOobinline = (uint)GetInt(fd, SOL_SOCKET, SO_OOBINLINE),
        };
        Span<byte> linger = stackalloc byte[8];
        Get(fd, SOL_SOCKET, SO_LINGER, linger);
        if (BinaryPrimitives.ReadInt32LittleEndian(linger) != 0)
            o.SoLinger = BinaryPrimitives.ReadUInt32LittleEndian(linger[4..]);
        try { o.SoBufLock = (uint)GetInt(fd, SOL_SOCKET, SO_BUF_LOCK); }
        catch (SyscallException) { }    // before 5.14
        if (BoundDevice(fd) is { } dev)
            o.SoBoundDev = dev;
        o.SoFilter.AddRange(Filter(fd, what));
        return o;
    }

    /// <summary>SO_BINDTODEVICE's interface name, or null when the socket is not bound to one.</summary>
    private static string? BoundDevice(int fd)
    {
        Span<byte> name = stackalloc byte[IfNameSize];
        int len = Get(fd, SOL_SOCKET, SO_BINDTODEVICE, name);
        var text = name[..len].TrimEnd((byte)0);
        return text.IsEmpty ? null : System.Text.Encoding.ASCII.GetString(text);
    }

    /// <summary>The classic BPF filter attached with SO_ATTACH_FILTER, one struct sock_filter (code u16, jt u8,
    /// jf u8, k u32) per little-endian u64 as CRIU stores it. SO_GET_FILTER counts in instructions, not bytes:
    /// asked with length 0 it gives the count. An eBPF program (SO_ATTACH_BPF) has no classic form the kernel
    /// can give back (EACCES), and a filter locked with SO_LOCK_FILTER has no field in CRIU's image: both are
    /// refused rather than dropped.</summary>
    private static ulong[] Filter(int fd, string what)
    {
        int count;
        try { count = Get(fd, SOL_SOCKET, SO_GET_FILTER, []); }
        catch (SyscallException e) when (e.Errno == Errnos.EACCES)
        {
            throw new CrispException($"{what}: an eBPF socket filter (SO_ATTACH_BPF) is attached: the kernel cannot give its program back");
        }
        if (count == 0)
            return [];
        if (GetInt(fd, SOL_SOCKET, SO_LOCK_FILTER) != 0)
            throw new CrispException($"{what}: its socket filter is locked (SO_LOCK_FILTER), which CRIU's image format cannot record");
        var insns = new ulong[count];
        Get(fd, SOL_SOCKET, SO_GET_FILTER, System.Runtime.InteropServices.MemoryMarshal.AsBytes(insns.AsSpan()));
        return insns;
    }

    /// <summary>Sets the options back. Buffer sizes go through the *FORCE options (root may exceed
    /// wmem_max/rmem_max, as the original may have), then the user-lock bits are put back as they were.</summary>
    public static void Restore(int fd, sk_opts_entry o)
    {
        if (o.SoSndbuf != 0)
            SetInt(fd, SOL_SOCKET, SO_SNDBUFFORCE, (int)(o.SoSndbuf / 2));
        if (o.SoRcvbuf != 0)
            SetInt(fd, SOL_SOCKET, SO_RCVBUFFORCE, (int)(o.SoRcvbuf / 2));
        SetTimeout(fd, SO_SNDTIMEO, o.SoSndTmoSec, o.SoSndTmoUsec);
        SetTimeout(fd, SO_RCVTIMEO, o.SoRcvTmoSec, o.SoRcvTmoUsec);
        SetInt(fd, SOL_SOCKET, SO_REUSEADDR, o.Reuseaddr ? 1 : 0);
        SetIf(fd, SO_PRIORITY, o.HasSoPriority, (int)o.SoPriority);
        if (o.HasSoRcvlowat && o.SoRcvlowat > 1)
            SetInt(fd, SOL_SOCKET, SO_RCVLOWAT, (int)o.SoRcvlowat);
        SetIf(fd, SO_MARK, o.SoMark != 0, (int)o.SoMark);
        SetIf(fd, SO_PASSCRED, o.SoPasscred, 1);
        SetIf(fd, SO_PASSSEC, o.SoPasssec, 1);
        SetIf(fd, SO_DONTROUTE, o.SoDontroute, 1);
        SetIf(fd, SO_NO_CHECK, o.SoNoCheck, 1);
        SetIf(fd, SO_REUSEPORT, o.SoReuseport, 1);
        SetIf(fd, SO_BROADCAST, o.SoBroadcast, 1);
        SetIf(fd, SO_KEEPALIVE, o.SoKeepalive, 1);
        SetIf(fd, SO_OOBINLINE, o.SoOobinline != 0, 1);
        if (o.HasSoLinger)
        {
            Span<byte> linger = stackalloc byte[8];
            BinaryPrimitives.WriteInt32LittleEndian(linger, 1);
            BinaryPrimitives.WriteUInt32LittleEndian(linger[4..], o.SoLinger);
            Set(fd, SOL_SOCKET, SO_LINGER, linger);
        }
        if (o.HasSoBufLock)
            SetInt(fd, SOL_SOCKET, SO_BUF_LOCK, (int)o.SoBufLock & (SOCK_SNDBUF_LOCK | SOCK_RCVBUF_LOCK));
        if (o.HasSoBoundDev)
            Set(fd, SOL_SOCKET, SO_BINDTODEVICE, System.Text.Encoding.ASCII.GetBytes(o.SoBoundDev));
        if (o.SoFilter.Count > 0)
            AttachFilter(fd, o.SoFilter);
    }

    /// <summary>SO_ATTACH_FILTER with a struct sock_fprog { u16 len; u64 filter pointer }.</summary>
    private static unsafe void AttachFilter(int fd, IReadOnlyList<ulong> insns)
    {
        var program = insns.ToArray();
        Span<byte> fprog = stackalloc byte[16];
        fixed (ulong* p = program)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(fprog, (ushort)program.Length);
            BinaryPrimitives.WriteUInt64LittleEndian(fprog[8..], (ulong)p);
            Set(fd, SOL_SOCKET, SO_ATTACH_FILTER, fprog);
        }
    }

    private static int GetIntOrZero(int fd, int opt)
    {
        try { return GetInt(fd, SOL_SOCKET, opt); }
        catch (SyscallException e) when (e.Errno == Errnos.EOPNOTSUPP) { return 0; }
    }

    private static void SetIf(int fd, int opt, bool when, int value)
    {
        if (when)
            SetInt(fd, SOL_SOCKET, opt, value);
    }

    private static (ulong Sec, ulong Usec) Timeout(int fd, int opt)
    {
        Span<byte> tv = stackalloc byte[16];
        Get(fd, SOL_SOCKET, opt, tv);
        return ((ulong)BinaryPrimitives.ReadInt64LittleEndian(tv), (ulong)BinaryPrimitives.ReadInt64LittleEndian(tv[8..]));
    }

    private static void SetTimeout(int fd, int opt, ulong sec, ulong usec)
    {
        if (sec == 0 && usec == 0)
            return;
        Span<byte> tv = stackalloc byte[16];
        BinaryPrimitives.WriteInt64LittleEndian(tv, (long)sec);
        BinaryPrimitives.WriteInt64LittleEndian(tv[8..], (long)usec);
        Set(fd, SOL_SOCKET, opt, tv);
    }
}
