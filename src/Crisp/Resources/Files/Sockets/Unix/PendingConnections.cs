using System.Globalization;
using Crisp.Dump;
using Crisp.Linux;

namespace Crisp.Resources.Files.Sockets.Unix;

/// <summary>Stream and seqpacket connections a listener has not accepted yet (CRIU's "icons", sk-unix.c).
/// The kernel keeps each as an embryo socket with no fd in the listener's queue; its client looks like an
/// established socket with no peer. The dump records the listener as the client's peer (as CRIU does);
/// restore connects the client to the listener's name again, so accept() finds it there. What the client
/// already sent sits in the embryo, which nothing can read without accepting it: refused, as is a
/// connection whose client closed (both as CRIU); one whose client lives outside the tree is refused unless
/// --skip-in-flight, which drops it (the listener comes back without it).</summary>
public static class PendingConnections
{
    /// <summary>A listener's pending connections must all come from clients the dump will restore.</summary>
    public static void CheckListener(DumpContext ctx, UnixDiag listener, string what)
    {
        foreach (uint client in listener.Icons)
        {
            if (client == 0)
                throw new CrispException($"{what} has a connection not yet accepted whose client has closed " +
                    "(what it sent cannot be read without accepting it)");
            if (ctx.Files.UnixPeers.InTree(ctx, client))
                continue;
            // CRIU dumps such a listener without a word and the connection dies with the tree; crisp asks for the
            // same --skip-in-flight as for TCP's, so nobody loses a client unawares.
            if (!ctx.Options.SkipInFlight)
                throw new CrispException($"{what} has a connection not yet accepted from unix socket {client} outside the dumped tree " +
                    "(--skip-in-flight drops it)");
            ctx.Log.Info($"Skipping in-flight connection (l) for {listener.Ino:x}: {what}, from unix socket {client} outside the tree");
        }
    }

    /// <summary>The peer to record for an established stream/seqpacket socket that unix_diag shows without
    /// one: the tree's listener holding it as a pending connection, or 0 for a socket whose peer closed
    /// (the kernel shut it down both ways then).</summary>
    public static uint PeerOf(DumpContext ctx, UnixDiag client, string what)
    {
        var listener = ctx.Files.PendingListeners.Of(ctx, client.Ino)?.Listener;
        if (listener is null)
        {
            if (client.Shutdown == 3)
                return 0;
            throw new CrispException($"{what} is connected to a listener outside the dumped tree that has not accepted it yet");
        }
        if (client.WqLen != 0)
            throw new CrispException($"{what} has sent data on a connection unix socket {listener} has not accepted yet " +
                "(it cannot be read without accepting it)");
        return listener.Value;
    }

    /// <summary>The images keep no queue order: the pending clients' entries go into files.img in the order
    /// their listeners would accept them, and restore connects them in that order. Runs before files.img is written.</summary>
    public static void OrderClients(DumpContext ctx)
    {
        var pending = ctx.Files.PendingListeners;
        if (!pending.Collected)
            return;
        var entries = ctx.Files.Table.Entries;
        var slots = Enumerable.Range(0, entries.Count)
            .Where(i => entries[i].Usk is { } u && pending.Of(ctx, u.Ino) is { } p && p.Listener == u.Peer).ToList();
        var ordered = slots.Select(i => entries[i]).OrderBy(e => pending.Of(ctx, e.Usk.Ino)!.Value.Position).ToList();
        for (int k = 0; k < slots.Count; k++)
            entries[slots[k]] = ordered[k];
    }
}

/// <summary>Dump-wide: client inode → (listener inode, place in its accept queue) over the tree's listening
/// unix sockets, found once, when the first pending client is met.</summary>
public sealed class PendingListeners
{
    private Dictionary<uint, (uint Listener, int Position)>? _byClient;

    public bool Collected => _byClient is not null;

    public (uint Listener, int Position)? Of(DumpContext ctx, uint client)
    {
        _byClient ??= Collect(ctx);
        return _byClient.TryGetValue(client, out var l) ? l : null;
    }

    private static Dictionary<uint, (uint, int)> Collect(DumpContext ctx)
    {
        var map = new Dictionary<uint, (uint, int)>();
        foreach (var task in ctx.Tasks)
            foreach (var link in Linux.Proc.ProcFds.Read(task.Pid).Where(l => l.Target.StartsWith("socket:[", StringComparison.Ordinal)))
            {
                uint ino = uint.Parse(link.Target["socket:[".Length..^1], CultureInfo.InvariantCulture);
                var d = Namespaces.NetNamespace.InTaskNamespace(ctx, task.Pid, () => SockDiag.Unix(ino));
                if (d is not null && d.State == UnixSocketFile.TCP_LISTEN)
                    for (int i = 0; i < d.Icons.Length; i++)
                        map[d.Icons[i]] = (ino, map.Count);
            }
        return map;
    }
}
