using System.Buffers.Binary;
using Crisp.Linux;

namespace Crisp.Compel.Puppets;

/// <summary>An fd crisp holds, to appear in a puppet at <see cref="Target"/> as the very same open file description.</summary>
public readonly record struct FdToInstall(int Target, int LocalFd, bool CloseOnExec);

/// <summary>Moves fds from crisp into a puppet: a socketpair is made in the puppet by remote syscall,
/// crisp takes one end with pidfd_getfd, sends batches of fds with SCM_RIGHTS, and the puppet receives
/// them (remote recvmsg) and dup3s each to its number (remote calls in batches, <see cref="Placement"/>). SCM_RIGHTS passes the description itself, so
/// offsets, flags and sharing come out right.</summary>
public static class FdInstaller
{
    /// <summary>Fds per SCM_RIGHTS message (the kernel allows 253; the control buffer must fit the data page).</summary>
    public const int BatchSize = 128;

    private const int AF_UNIX = 1, SOCK_SEQPACKET = 5, SOL_SOCKET = 1, SCM_RIGHTS = 1, MSG_CTRUNC = 8;
    private const int F_SETFD = 2, F_DUPFD_CLOEXEC = 1030, FD_CLOEXEC = 1, O_CLOEXEC = 0x80000;

    // Layout on the puppet's data page for recvmsg.
    private const int MsgAt = 0, IovAt = 64, ByteAt = 80, ControlAt = 96, CmsgHeader = 16;

    /// <summary>Closes every fd the puppet inherited (from crisp's parent, or its parent puppet).</summary>
    public static void CloseInherited(Puppet puppet)
        => puppet.Call("close_range", Sysno.close_range, 0, uint.MaxValue, 0);

    /// <summary>Closes every fd the puppet has, then installs <paramref name="fds"/> at their numbers.</summary>
    public static void Install(Puppet puppet, IReadOnlyList<FdToInstall> fds)
    {
        if (fds.Count == 0)
            CloseInherited(puppet);
        else
            Add(puppet, fds, closeFirst: true);
    }

    /// <summary>Installs <paramref name="fds"/> at their numbers, leaving the puppet's other fds as they are.</summary>
    public static void Add(Puppet puppet, IReadOnlyList<FdToInstall> fds) => Add(puppet, fds, closeFirst: false);

    // Each remote call is a ptrace stop (~60-100 µs on this kind of VM): the calls go in batches, three stops for a
    // task's fds in the usual case (transport, receive, placement) where one call each was ~11.
    private static void Add(Puppet puppet, IReadOnlyList<FdToInstall> fds, bool closeFirst)
    {
        if (fds.Count == 0)
            return;
        var targets = new HashSet<int>();
        foreach (var f in fds)
            if (f.Target < 0 || !targets.Add(f.Target))
                throw new ArgumentException($"fd {f.Target} is a bad or repeated target for puppet {puppet.Pid}");

        // The transport sits above every target, so no dup3 can clobber it.
        int transport = targets.Max() + 1;
        var (local, moveTransport) = OpenTransport(puppet, transport, closeFirst);
        bool closed = false;
        try
        {
            for (int i = 0; i < fds.Count; i += BatchSize)
            {
                bool last = i + BatchSize >= fds.Count;
                InstallBatch(puppet, local, transport, [.. fds.Skip(i).Take(BatchSize)], i == 0 ? moveTransport : [], closeTransport: last);
            }
            closed = true;
        }
        finally
        {
            local.Dispose();
            if (!closed)
                puppet.Remote.Syscall(Sysno.close, transport);
        }
    }

    /// <summary>Makes the socketpair in the puppet and takes one end; returns the calls that leave the puppet's end
    /// at <paramref name="transport"/>, run with the first receive.</summary>
    private static (UnixFd Local, List<(string, RemoteCall)> Move) OpenTransport(Puppet puppet, int transport, bool closeFirst)
    {
        ulong at = puppet.Remote.PutOnScratch(new byte[8]);
        var open = new List<(string, RemoteCall)>();
        if (closeFirst)
            open.Add(("close_range", new RemoteCall(Sysno.close_range, 0, uint.MaxValue, 0)));
        open.Add(("socketpair", new RemoteCall(Sysno.socketpair, AF_UNIX, SOCK_SEQPACKET, 0, (long)at)));
        puppet.Remote.CallAll(open);
        Span<byte> sv = stackalloc byte[8];
        puppet.Remote.ReadMemory(at, sv);
        int mine = BinaryPrimitives.ReadInt32LittleEndian(sv);
        int theirs = BinaryPrimitives.ReadInt32LittleEndian(sv[4..]);
        UnixFd local;
        try
        {
            using var pidfd = PidFd.Open(puppet.Pid);
            local = pidfd.GetFd(theirs);
        }
        catch
        {
            puppet.Remote.Syscalls([new RemoteCall(Sysno.close, mine), new RemoteCall(Sysno.close, theirs)]);
            throw;
        }
        var move = new List<(string, RemoteCall)> { ("close", new RemoteCall(Sysno.close, theirs)) };
        if (mine != transport)
        {
            move.Add(("dup3", new RemoteCall(Sysno.dup3, mine, transport, O_CLOEXEC)));
            move.Add(("close", new RemoteCall(Sysno.close, mine)));
        }
        return (local, move);
    }

    private static void InstallBatch(Puppet puppet, UnixFd local, int transport, List<FdToInstall> batch,
        List<(string, RemoteCall)> before, bool closeTransport)
    {
        Sockets.SendFds(local.Fd, batch.Select(f => f.LocalFd).ToArray());
        int[] received = Receive(puppet, transport, batch.Count, before);
        if (Placement(batch, received) is { } calls)
        {
            if (closeTransport)
                calls.Add(("close", new RemoteCall(Sysno.close, transport)));
            puppet.Remote.CallAll(calls);
            return;
        }

        // Received fds land on the lowest free numbers, possibly a later target of this batch:
        // before a dup3 onto a number that holds a pending fd, that fd is moved above the transport.
        var pending = new Dictionary<int, int>();   // number in puppet -> index in batch
        var at = new int[batch.Count];
        for (int i = 0; i < batch.Count; i++)
        {
            at[i] = received[i];
            pending[received[i]] = i;
        }
        for (int i = 0; i < batch.Count; i++)
        {
            var f = batch[i];
            pending.Remove(at[i]);
            if (at[i] == f.Target)
            {
                if (f.CloseOnExec)
                    puppet.Call("fcntl(F_SETFD)", Sysno.fcntl, f.Target, F_SETFD, FD_CLOEXEC);
                continue;
            }
            if (pending.Remove(f.Target, out int other))
            {
                int moved = (int)puppet.Call("fcntl(F_DUPFD_CLOEXEC)", Sysno.fcntl, f.Target, F_DUPFD_CLOEXEC, transport + 1);
                at[other] = moved;
                pending[moved] = other;
            }
            puppet.Call($"dup3(→{f.Target})", Sysno.dup3, at[i], f.Target, f.CloseOnExec ? O_CLOEXEC : 0);
            puppet.Call("close", Sysno.close, at[i]);
        }
        if (closeTransport)
            puppet.Call("close", Sysno.close, transport);
    }

    /// <summary>The calls that put each received fd at its number, all known in advance when, placing the highest
    /// target first, no dup3 lands on a number another received fd still holds — the usual case: the fds arrive on
    /// the lowest free numbers, at or below their targets. Null otherwise (one call at a time then, each move
    /// depending on where the one before put an fd).</summary>
    internal static List<(string, RemoteCall)>? Placement(IReadOnlyList<FdToInstall> batch, IReadOnlyList<int> received)
    {
        var pending = received.ToHashSet();
        var calls = new List<(string, RemoteCall)>();
        foreach (int i in Enumerable.Range(0, batch.Count).OrderByDescending(i => batch[i].Target))
        {
            var f = batch[i];
            pending.Remove(received[i]);
            if (received[i] == f.Target)
            {
                if (f.CloseOnExec)
                    calls.Add(("fcntl(F_SETFD)", new RemoteCall(Sysno.fcntl, f.Target, F_SETFD, FD_CLOEXEC)));
                continue;
            }
            if (pending.Contains(f.Target))
                return null;
            calls.Add(($"dup3(→{f.Target})", new RemoteCall(Sysno.dup3, received[i], f.Target, f.CloseOnExec ? O_CLOEXEC : 0)));
            calls.Add(("close", new RemoteCall(Sysno.close, received[i])));
        }
        return calls;
    }

    /// <summary>Remote recvmsg of one SCM_RIGHTS message of <paramref name="count"/> fds on the puppet's data page.</summary>
    private static int[] Receive(Puppet puppet, int transport, int count, List<(string, RemoteCall)> before)
    {
        int controlSpace = CmsgHeader + ((count * 4 + 7) & ~7);
        var page = new byte[ControlAt + controlSpace];
        ulong data = puppet.Remote.ScratchData;
        if (data == 0)
            data = puppet.Remote.PutOnScratch([0]);
        var msg = page.AsSpan(MsgAt);
        BinaryPrimitives.WriteUInt64LittleEndian(msg[16..], data + IovAt);               // msg_iov
        BinaryPrimitives.WriteUInt64LittleEndian(msg[24..], 1);                          // msg_iovlen
        BinaryPrimitives.WriteUInt64LittleEndian(msg[32..], data + ControlAt);           // msg_control
        BinaryPrimitives.WriteUInt64LittleEndian(msg[40..], (ulong)controlSpace);        // msg_controllen
        BinaryPrimitives.WriteUInt64LittleEndian(page.AsSpan(IovAt), data + ByteAt);     // iov_base
        BinaryPrimitives.WriteUInt64LittleEndian(page.AsSpan(IovAt + 8), 1);             // iov_len
        ulong at = puppet.Remote.PutOnScratch(page);

        puppet.Remote.CallAll([.. before, ("recvmsg(SCM_RIGHTS)", new RemoteCall(Sysno.recvmsg, transport, (long)(at + MsgAt), 0))]);
        puppet.Remote.ReadMemory(at, page);
        ulong controlLength = BinaryPrimitives.ReadUInt64LittleEndian(page.AsSpan(MsgAt + 40));
        int flags = BinaryPrimitives.ReadInt32LittleEndian(page.AsSpan(MsgAt + 48));
        var cmsg = page.AsSpan(ControlAt);
        int level = BinaryPrimitives.ReadInt32LittleEndian(cmsg[8..]);
        int type = BinaryPrimitives.ReadInt32LittleEndian(cmsg[12..]);
        int n = controlLength < CmsgHeader ? 0 : ((int)BinaryPrimitives.ReadUInt64LittleEndian(cmsg) - CmsgHeader) / 4;
        var fds = new int[Math.Max(n, 0)];
        for (int i = 0; i < fds.Length; i++)
            fds[i] = BinaryPrimitives.ReadInt32LittleEndian(cmsg[(CmsgHeader + 4 * i)..]);
        if ((flags & MSG_CTRUNC) != 0 || level != SOL_SOCKET || type != SCM_RIGHTS || fds.Length != count)
        {
            foreach (int fd in fds)
                puppet.Remote.Syscall(Sysno.close, fd);
            throw new CrispException($"puppet {puppet.Pid}: received {fds.Length} of {count} fds (flags 0x{flags:x})");
        }
        return fds;
    }
}
