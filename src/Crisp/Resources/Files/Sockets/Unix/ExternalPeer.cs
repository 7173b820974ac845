using Crisp.Dump;
using Crisp.Images.Proto;
using Crisp.Linux;

namespace Crisp.Resources.Files.Sockets.Unix;

/// <summary>--ext-unix-sk (CRIU's): a datagram socket of the tree connected to a named socket outside it
/// — the classic case is syslog's /dev/log — is dumped with an extra unix_sk_entry for that peer
/// (uflags USK_EXTERN, its name, no fd refers to it); restore does not make the peer but connects the
/// socket to its name again. A stream connection to an outside peer cannot be re-made (the peer's side
/// of it is gone with the checkpoint), so it is refused, as is a peer without a name to connect to.</summary>
public static class ExternalPeer
{
    public static void Dump(DumpContext ctx, UnixDiag socket, UnixDiag peer, string what)
    {
        string where = $"{what} is connected to unix socket {peer.Ino} outside the dumped tree";
        if (!ctx.Options.ExtUnixSk)
            throw new CrispException($"{where}; pass --ext-unix-sk to reconnect it at restore");
        if (socket.Type != Crisp.Linux.Sockets.SOCK_DGRAM)
            throw new CrispException($"{where}: an external stream connection cannot be restored (only datagram sockets are reconnected)");
        if (peer.Name.Length == 0)
            throw new CrispException($"{where}, which has no name to reconnect to");
        var known = ctx.Files.ExternalPeers.Inodes;
        if (!known.Add(peer.Ino))
            return;
        ctx.Files.Table.Add(ctx, id => new file_entry
        {
            Type = fd_types.Unixsk,
            Id = id,
            Usk = new unix_sk_entry
            {
                Id = id,
                Ino = peer.Ino,
                Type = (uint)peer.Type,
                State = (uint)peer.State,
                Flags = 0,
                Uflags = UnixSocketFile.USK_EXTERN,
                Backlog = 0,
                Peer = 0,
                Fown = Fown.None(),
                Opts = new sk_opts_entry { SoSndbuf = 0, SoRcvbuf = 0, SoSndTmoSec = 0, SoSndTmoUsec = 0, SoRcvTmoSec = 0, SoRcvTmoUsec = 0 },   // required in CRIU's schema: zeros, as CRIU writes an outside peer
                Name = Google.Protobuf.ByteString.CopyFrom(peer.Name),
            },
        });
        ctx.Log.Debug($"{what}: external peer {peer.Ino} ({System.Text.Encoding.UTF8.GetString(peer.Name).TrimEnd('\0')}) recorded");
    }
}

/// <summary>Dump-wide: the outside peers already written.</summary>
public sealed class ExternalPeersDump
{
    public HashSet<uint> Inodes { get; } = [];
}
