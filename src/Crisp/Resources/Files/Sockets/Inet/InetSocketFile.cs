using Crisp.Dump;
using Crisp.Images;
using Crisp.Images.Proto;
using Crisp.Linux;
using Crisp.Restore;
using static Crisp.Linux.SocketCalls;

namespace Crisp.Resources.Files.Sockets.Inet;

/// <summary>TCP and UDP sockets over IPv4/IPv6 — CRIU's INETSK kind (sk-inet.c, sk-tcp.c). Addresses by
/// getsockname/getpeername, the TCP state by TCP_INFO, the listen backlog by inet_diag, options by
/// getsockopt. An established TCP connection, also one half-closed (TcpHalfClose), is read through TCP_REPAIR
/// into tcp-stream-INO.img, only with --tcp-established (otherwise refused, as CRIU does).</summary>
public sealed class InetSocketFile : IFileKind
{
    public const int IPPROTO_TCP = 6, IPPROTO_UDP = 17;
    public const int TCP_ESTABLISHED = 1, TCP_CLOSE = 7, TCP_LISTEN = 10;
    private const int IPV6_FREEBIND = 78;

    public fd_types Type => fd_types.Inetsk;

    public bool Claims(OpenFd fd)
    {
        if (fd.Stat.Type != FileStat.S_IFSOCK)
            return false;
        int family = GetInt(fd.Copy.Fd, SOL_SOCKET, SO_DOMAIN);
        if (family != AF_INET && family != AF_INET6)
            return false;
        int type = GetInt(fd.Copy.Fd, SOL_SOCKET, SO_TYPE), proto = GetInt(fd.Copy.Fd, SOL_SOCKET, SO_PROTOCOL);
        return (type == Crisp.Linux.Sockets.SOCK_STREAM && proto == IPPROTO_TCP) || (type == Crisp.Linux.Sockets.SOCK_DGRAM && proto == IPPROTO_UDP);
    }

    public file_entry Dump(DumpContext ctx, uint id, OpenFd fd)
    {
        int s = fd.Copy.Fd;
        int family = GetInt(s, SOL_SOCKET, SO_DOMAIN), type = GetInt(s, SOL_SOCKET, SO_TYPE), proto = GetInt(s, SOL_SOCKET, SO_PROTOCOL);
        var src = InetAddress.FromSockaddr(SockName(s)) ?? throw new CrispException($"task {fd.Pid} fd {fd.Fd}: getsockname gave no inet address");
        var dst = InetAddress.FromSockaddr(PeerName(s));
        string kind = $"{(proto == IPPROTO_TCP ? "TCP" : "UDP")}{(family == AF_INET6 ? "v6" : "")} socket {src}";
        string what = $"task {fd.Pid} fd {fd.Fd}: {kind}";
        int state = proto == IPPROTO_TCP ? TcpRepair.Info(s).State : dst is null ? TCP_CLOSE : TCP_ESTABLISHED;

        var entry = new inet_sk_entry
        {
            Id = id,
            Ino = (uint)fd.Stat.Ino,
            Family = (uint)family,
            Type = (uint)type,
            Proto = (uint)proto,
            State = (uint)state,
            SrcPort = src.Port,
            DstPort = dst?.Port ?? 0,
            Flags = (uint)fd.Flags,
            Backlog = 0,   // required; a listening socket's comes from sock_diag below
            Fown = Fown.Of(fd, s),
            Opts = SocketOptions.Dump(s, what),
            IpOpts = new ip_opts_entry { Freebind = GetInt(s, family == AF_INET6 ? SOL_IPV6 : SOL_IP, family == AF_INET6 ? IPV6_FREEBIND : IP_FREEBIND) != 0 },
        };
        entry.SrcAddr.AddRange(src.Words);
        if (dst is { } d)
            entry.DstAddr.AddRange(d.Words);
        else
            entry.DstAddr.AddRange(new uint[src.Words.Length]);   // CRIU writes a zero address (its restore checks the length)
        if (family == AF_INET6)
            entry.V6Only = GetInt(s, SOL_IPV6, IPV6_V6ONLY) != 0;
        if (entry.Opts.SoKeepalive && proto == IPPROTO_TCP)
        {
            entry.Opts.TcpKeepcnt = (uint)GetInt(s, SOL_TCP, TCP_KEEPCNT);
            entry.Opts.TcpKeepidle = (uint)GetInt(s, SOL_TCP, TCP_KEEPIDLE);
            entry.Opts.TcpKeepintvl = (uint)GetInt(s, SOL_TCP, TCP_KEEPINTVL);
        }

        if (proto == IPPROTO_TCP)
        {
            switch (state)
            {
                case TCP_LISTEN:
                    var diag = Namespaces.NetNamespace.InTaskNamespace(ctx, fd.Pid, () => SockDiag.Inet(family, IPPROTO_TCP, entry.Ino)) ?? throw new CrispException($"{what}: inet_diag does not know it");
                    if (diag.RQueue > 0)
                    {
                        // CRIU's words both ways (sk-inet.c): the listener alone is dumped; its queue dies with the tree.
                        if (!ctx.Options.SkipInFlight)
                            throw new CrispException($"{what} has {diag.RQueue} connection(s) not yet accepted: no kernel call puts a connection " +
                                "back into a listener's accept queue (CRIU refuses them too; --skip-in-flight drops them)");
                        ctx.Log.Info($"Skipping in-flight connection (l) for {entry.Ino:x}: {what}, {diag.RQueue} not yet accepted");
                    }
                    entry.Backlog = diag.WQueue;
                    break;
                case TCP_CLOSE:
                    break;
                case var connected when TcpHalfClose.Restorable(connected):
                    string name = connected == TCP_ESTABLISHED ? "established" : $"half-closed ({TcpHalfClose.Name(connected)})";
                    if (!ctx.Options.TcpEstablished)
                        throw new CrispException($"{what}: {name} TCP connection to {dst} needs --tcp-established");
                    DumpStream(ctx, fd, entry, src, dst!.Value, what);
                    break;
                default:
                    throw new CrispException($"{what}: TCP state {TcpHalfClose.Name(state)} is not supported (a connection is dumped " +
                        "established or half-closed: FIN_WAIT1, FIN_WAIT2, CLOSE_WAIT, LAST_ACK, CLOSING)");
            }
        }
        return new file_entry { Type = Type, Id = id, Isk = entry };
    }

    /// <summary>Puts the socket in repair mode (kept until the dump ends: a killed task's socket then goes
    /// away without FIN or RST, so the peer waits for the restored one) and writes tcp-stream-INO.img.</summary>
    private static void DumpStream(DumpContext ctx, OpenFd fd, inet_sk_entry entry, InetAddress src, InetAddress dst, string what)
    {
        var dump = ctx.Files.TcpRepaired;
        // Locked before the queues are read: nothing the peer sends from now on is taken (and lost).
        (dump.Lock ??= new NetworkLock(ctx.Options.NetworkLock, ctx.Options.RootPid, ctx.Log)).Lock(src, dst);
        var held = new UnixFd(FdOps.Fcntl(fd.Copy.Fd, FdOps.F_DUPFD_CLOEXEC, 0));
        // A delayed ACK still pending goes out now: once the socket is gone, the peer would retransmit
        // the unacknowledged data to a port nobody owns and the host would answer with a RST.
        SetInt(held.Fd, SOL_TCP, TcpRepair.TCP_QUICKACK, 1);
        TcpRepair.On(held.Fd);
        dump.Sockets.Add(held);
        var (e, inQ, outQ) = TcpRepair.Dump(held.Fd, what);
        using var w = ctx.Images.CreateWriter(ImageFile.TcpStream(entry.Ino));
        w.Write(e, [.. inQ, .. outQ]);
        ctx.Log.Debug($"{what}: {TcpHalfClose.Name((int)entry.State)}, in {e.InqLen} bytes (seq {e.InqSeq}), out {e.OutqLen} bytes ({e.UnsqLen} unsent, seq {e.OutqSeq})");
    }

    /// <summary>Dump over: a tree that runs on gets its connections back out of repair mode (before it is
    /// let go) and unlocked; a killed tree's sockets are closed by crisp while still in repair mode,
    /// silently, and stay locked until their restore.</summary>
    public void ReleaseDump(DumpContext ctx, bool killed)
    {
        var dump = ctx.Files.TcpRepaired;
        var held = dump.Sockets;
        foreach (var s in held)
        {
            if (!killed)
            {
                try { TcpRepair.Off(s.Fd); }
                catch (SyscallException e) { ctx.Log.Warn($"tcp: leaving repair mode failed: {e.Message}"); }
            }
            s.Dispose();
        }
        held.Clear();
        if (!killed)
            dump.Lock?.Unlock();
    }

    /// <summary>Restore over: the connections' packets pass again once every task runs; a failed restore
    /// leaves the lock as it found it.</summary>
    public void CleanupRestore(RestoreContext ctx)
    {
        var state = ctx.Files.Tcp;
        if (ctx.Released)
            state.Lock?.Unlock();
        else
            state.Lock?.Abandon();
        state.Lock = null;
    }

    public UnixFd Open(RestoreContext ctx, file_entry entry)
    {
        var e = entry.Isk ?? throw new CrispException($"files.img: INETSK entry {entry.Id} has no isk part");
        string what = $"inet socket {e.Ino}";
        int family = (int)e.Family;
        if (family != AF_INET && family != AF_INET6)
            throw new CrispException($"{what}: family {family} is not inet");
        bool tcp = e.Proto == IPPROTO_TCP;
        if (!(tcp && e.Type == Crisp.Linux.Sockets.SOCK_STREAM) && !(e.Proto == IPPROTO_UDP && e.Type == Crisp.Linux.Sockets.SOCK_DGRAM))
            throw new CrispException($"{what}: type {e.Type} protocol {e.Proto} is not supported");
        var src = InetAddress.FromEntry(family, e.SrcAddr, e.SrcPort, what);
        // In the tree's network namespace: a socket belongs to the one it was made in.
        var sock = NetNamespaces.Socket(Namespaces.NetNamespace.Of(ctx), family, (int)e.Type, (int)e.Proto);
        return NewSocket.Shape(ctx, sock, $"{what} ({src})", e.Flags, e.Fown, s =>
        {
            if (family == AF_INET6)
                SetInt(s, SOL_IPV6, IPV6_V6ONLY, e.V6Only ? 1 : 0);
            if (e.IpOpts?.Freebind == true)
                SetInt(s, family == AF_INET6 ? SOL_IPV6 : SOL_IP, family == AF_INET6 ? IPV6_FREEBIND : IP_FREEBIND, 1);
            bool established = e.State == TCP_ESTABLISHED;
            if (tcp && TcpHalfClose.Restorable((int)e.State))
            {
                // Buffer sizes first: the queues go back into them. Repair mode then forces port reuse,
                // and leaving it clears SO_REUSEADDR, which is set back after.
                SocketOptions.Restore(s, e.Opts);
                RestoreStream(ctx, s, e, src, what);
            }
            else
            {
                // Bound as before even if the port is held by a dying or TIME_WAIT socket; the real
                // SO_REUSEADDR comes back with the other options below.
                SetInt(s, SOL_SOCKET, SO_REUSEADDR, 1);
                if (e.SrcPort != 0)
                    Bind(s, src.ToSockaddr());
                if (tcp && e.State == TCP_LISTEN)
                    Listen(s, (int)e.Backlog);
                else if (!tcp && established)
                    Connect(s, InetAddress.FromEntry(family, e.DstAddr, e.DstPort, what).ToSockaddr());
            }
            SocketOptions.Restore(s, e.Opts);
            if (tcp && e.Opts.SoKeepalive)
            {
                if (e.Opts.HasTcpKeepcnt) SetInt(s, SOL_TCP, TCP_KEEPCNT, (int)e.Opts.TcpKeepcnt);
                if (e.Opts.HasTcpKeepidle) SetInt(s, SOL_TCP, TCP_KEEPIDLE, (int)e.Opts.TcpKeepidle);
                if (e.Opts.HasTcpKeepintvl) SetInt(s, SOL_TCP, TCP_KEEPINTVL, (int)e.Opts.TcpKeepintvl);
            }
        });
    }

    /// <summary>--network-lock, else the dump's method: skip stays skip, anything else is done with nftables
    /// (the only method crisp has; a CRIU dump's iptables rules are not crisp's to remove).</summary>
    private static NetworkLockMethod RestoreLockMethod(RestoreContext ctx) =>
        ctx.Options.NetworkLock ?? (ctx.Inventory.HasNetworkLockMethod && ctx.Inventory.NetworkLockMethod == (uint)NetworkLockMethod.Skip
            ? NetworkLockMethod.Skip : NetworkLockMethod.Nftables);

    /// <summary>Re-creates an established connection from tcp-stream-INO.img. Repair mode lets the socket
    /// bind the port its listener already holds (the kernel forces reuse for it); it is left once the
    /// connection is whole, which sends the peer a window probe and the connection runs on.</summary>
    private static void RestoreStream(RestoreContext ctx, int s, inet_sk_entry e, InetAddress src, string what)
    {
        if (!ctx.Options.TcpEstablished)
            throw new CrispException($"{what}: the images hold an established TCP connection ({TcpHalfClose.Name((int)e.State)}); restore it with --tcp-established");
        var dst = InetAddress.FromEntry((int)e.Family, e.DstAddr, e.DstPort, what);
        var file = ImageFile.TcpStream(e.Ino);
        if (!ctx.Images.Exists(file))
            throw new CrispException($"{what}: {file.FileName} is missing");
        using var r = ctx.Images.OpenReader(file);
        var stream = r.Read<tcp_stream_entry>() ?? throw new CrispException($"{file.FileName}: no entry");
        if (stream.InqLen + (long)stream.OutqLen > r.Remaining)
            throw new CrispException($"{file.FileName}: queues of {stream.InqLen}+{stream.OutqLen} bytes, {r.Remaining} in the image");
        var inQ = r.ReadExtra(stream.InqLen);
        var outQ = r.ReadExtra(stream.OutqLen);
        // Locked (again, or for the first time on another host) until the tree runs: the new socket's
        // window probe and the peer's retransmissions wait for the task that owns it.
        var state = ctx.Files.Tcp;
        (state.Lock ??= new NetworkLock(RestoreLockMethod(ctx), ctx.Root.Pid, ctx.Log)).Lock(src, dst);
        TcpRepair.On(s);
        TcpRepair.Restore(s, (int)e.State, Namespaces.NetNamespace.Of(ctx), stream, src, dst, inQ, outQ);
        TcpRepair.Off(s);
        ctx.Log.Debug($"{what}: {src} -> {dst} back {TcpHalfClose.Name((int)e.State)}, in {inQ.Length} out {outQ.Length} bytes");
    }
}

/// <summary>Dump-wide: crisp's copies of the sockets put in repair mode, until the dump is over, and the
/// network lock of their connections.</summary>
public sealed class TcpRepairedDump
{
    public List<UnixFd> Sockets { get; } = [];
    public NetworkLock? Lock { get; set; }
}

/// <summary>Restore-wide: the network lock of the restored connections.</summary>
public sealed class TcpRestoreState
{
    public NetworkLock? Lock { get; set; }
}
