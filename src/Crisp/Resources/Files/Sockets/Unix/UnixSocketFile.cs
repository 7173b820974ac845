using System.Text;
using Crisp.Dump;
using Crisp.Images.Proto;
using Crisp.Linux.Proc;
using Crisp.Linux;
using Crisp.Restore;

namespace Crisp.Resources.Files.Sockets.Unix;

/// <summary>AF_UNIX sockets (socket:[ino]) — CRIU's UNIXSK kind (sk-unix.c). unix_diag gives the peer,
/// name, shutdown and listen state; the receive queue is peeked from crisp's copy; options by getsockopt.
/// Restore re-creates the whole set of sockets at once (<see cref="UnixSocketSet"/>) so pairs, names and
/// queues come out connected as they were.</summary>
public sealed class UnixSocketFile : IFileKind
{
    public const int TCP_ESTABLISHED = 1, TCP_CLOSE = 7, TCP_LISTEN = 10;
    /// <summary>unix_sk_entry.uflags: a peer outside the tree, written so its socket can be reconnected (CRIU's).</summary>
    public const uint USK_EXTERN = 1;

    public fd_types Type => fd_types.Unixsk;

    public bool Claims(OpenFd fd) =>
        fd.Stat.Type == FileStat.S_IFSOCK && SocketCalls.GetInt(fd.Copy.Fd, SocketCalls.SOL_SOCKET, SocketCalls.SO_DOMAIN) == SocketCalls.AF_UNIX;

    public file_entry Dump(DumpContext ctx, uint id, OpenFd fd)
    {
        uint ino = (uint)fd.Stat.Ino;
        string what = $"task {fd.Pid} fd {fd.Fd}: unix socket {ino}";
        var d = Namespaces.NetNamespace.InTaskNamespace(ctx, fd.Pid, () => SockDiag.Unix(ino)) ?? throw new CrispException($"{what}: unix_diag does not know it");
        if (d.Icons.Length > 0)
            PendingConnections.CheckListener(ctx, d, what);
        uint peer = d.PeerIno == 0 && d.State == TCP_ESTABLISHED && d.Type != Crisp.Linux.Sockets.SOCK_DGRAM
            ? PendingConnections.PeerOf(ctx, d, what) : d.PeerIno;
        if (d.PeerIno != 0 && Namespaces.NetNamespace.InTaskNamespace(ctx, fd.Pid, () => SockDiag.Unix(d.PeerIno)) is { } outside && !ctx.Files.UnixPeers.InTree(ctx, d.PeerIno))
            ExternalPeer.Dump(ctx, d, outside, what);

        var entry = new unix_sk_entry
        {
            Id = id,
            Ino = ino,
            Type = (uint)d.Type,
            State = (uint)d.State,
            Flags = (uint)fd.Flags,
            Uflags = 0,
            Backlog = d.State == TCP_LISTEN ? d.WqLen : 0,
            Peer = peer,
            Fown = Fown.Of(fd),
            Opts = SocketOptions.Dump(fd.Copy.Fd, what),
            Name = Google.Protobuf.ByteString.CopyFrom(d.Name),
            Shutdown = (sk_shutdown)(d.Shutdown & 3),
        };
        if (d.Name.Length > 0 && d.Name[0] != 0)
            DescribeFile(entry, d, fd.Pid);
        // Listening and unconnected stream sockets have no data queue to peek (recvmsg fails).
        if (d.Type == Crisp.Linux.Sockets.SOCK_DGRAM || d.State == TCP_ESTABLISHED)
        {
            var queue = SocketQueue.Peek(fd.Copy.Fd, what);
            try
            {
                foreach (var m in queue)
                    ctx.Files.SkQueues.Packets.Add((id, new QueuedPacket(m.Data, InFlightFiles.Dump(ctx, m, what))));
            }
            catch
            {
                foreach (var m in queue)
                    m.Dispose();   // those not yet handed to the in-flight holder (disposing twice is harmless)
                throw;
            }
        }
        return new file_entry { Type = Type, Id = id, Usk = entry };
    }

    /// <summary>A socket bound to a path: the file's mode and owner, and whether it was unlinked (the
    /// path no longer names the socket's inode). Relative names keep the task's cwd in name_dir.</summary>
    private static void DescribeFile(unix_sk_entry entry, UnixDiag d, int pid)
    {
        string path = Encoding.UTF8.GetString(d.Name).TrimEnd('\0');
        if (!path.StartsWith('/'))
            entry.NameDir = new FileInfo(Procfs.Host.Path(pid, "cwd")).LinkTarget ?? "/";
        string full = path.StartsWith('/') ? path : Path.Combine(entry.NameDir, path);
        try
        {
            using var f = FileIo.Open(full, FileIo.O_PATH);
            var st = FdOps.Stat(f.Fd);
            if (d.Vfs is { } vfs && st.Ino != vfs.Ino)
                entry.Deleted = true;
            else
            {
                var (uid, gid) = Owner(full);
                entry.FilePerms = new file_perms_entry { Mode = st.Mode, Uid = uid, Gid = gid };
            }
        }
        catch (SyscallException e) when (e.Errno == Errnos.ENOENT)
        {
            entry.Deleted = true;
        }
    }

    private static (uint Uid, uint Gid) Owner(string path)
    {
        var info = new UnixFileInfo(path);
        return (info.Uid, info.Gid);
    }

    public void FinishDump(DumpContext ctx)
    {
        ctx.Files.SkQueues.Write(ctx.Images);
        PendingConnections.OrderClients(ctx);
    }

    public UnixFd Open(RestoreContext ctx, file_entry entry)
    {
        var usk = entry.Usk ?? throw new CrispException($"files.img: UNIXSK entry {entry.Id} has no usk part");
        return ctx.Files.UnixSockets.Take(ctx, usk);
    }
}

/// <summary>Dump-wide: inodes of the unix sockets the dumped tree holds (to tell a peer in the tree
/// from an external one before that peer's fd has been reached).</summary>
public sealed class UnixPeers
{
    private HashSet<ulong>? _inodes, _inFlight;

    public bool InTree(DumpContext ctx, uint ino)
    {
        _inodes ??= ctx.Tasks.SelectMany(t => Linux.Proc.ProcFds.Read(t.Pid))
            .Where(l => l.Target.StartsWith("socket:[", StringComparison.Ordinal))
            .Select(l => ulong.Parse(l.Target["socket:[".Length..^1], System.Globalization.CultureInfo.InvariantCulture))
            .ToHashSet();
        if (_inodes.Contains(ino))
            return true;
        // Only a peer no task holds makes crisp look into the queues for sockets in flight.
        _inFlight ??= InFlightFiles.SocketInodes(ctx);
        return _inFlight.Contains(ino);
    }
}

/// <summary>Owner of a path via stat(2) without following a final symlink (a socket file is never one).</summary>
internal readonly unsafe struct UnixFileInfo
{
    public uint Uid { get; }
    public uint Gid { get; }

    public UnixFileInfo(string path)
    {
        byte* st = stackalloc byte[144];
        var bytes = Encoding.UTF8.GetBytes(path + "\0");
        fixed (byte* p = bytes)
            RawSyscall.Call("stat", 4, (long)p, (long)st);
        Uid = *(uint*)(st + 28);
        Gid = *(uint*)(st + 32);
    }
}
