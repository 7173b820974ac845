using Crisp.Linux;
using static Crisp.Linux.SocketCalls;

namespace Crisp.Resources.Files.Sockets.Inet;

/// <summary>--network-lock: how established connections are kept quiet between dump and restore. The
/// numbers are CRIU's (inventory network_lock_method); crisp does nftables and skip.</summary>
public enum NetworkLockMethod : uint { Iptables = 0, Nftables = 1, Skip = 2 }

/// <summary>CRIU's per-connection network lock, with nftables: from before a connection's queues are read
/// at dump until its socket is back at restore, the packets of its address/port 4-tuple are dropped in
/// both directions. Without it the peer's data could be acknowledged by a socket about to be killed (and
/// lost), or answered with a RST by a host that has no socket for it (the connection dies); with it the
/// peer just retransmits until the restored socket takes the data. One table per dumped tree,
/// `inet crisp-ROOTPID`, with a set of 4-tuples per address family and one drop rule per direction;
/// a killed tree's table stays until its restore removes it.</summary>
public sealed class NetworkLock(NetworkLockMethod method, int rootPid, Log log)
{
    /// <summary>The nftables table (family inet) that holds the lock.</summary>
    public string Table { get; } = $"crisp-{rootPid}";

    /// <summary>Whether a connection is locked now (nftables; skip never locks).</summary>
    public bool Holds => method == NetworkLockMethod.Nftables && _locked.Count > 0;
    private bool? _existedBefore;
    private readonly HashSet<string> _locked = [];

    /// <summary>Drops the connection's packets from now on (idempotent).</summary>
    public void Lock(InetAddress local, InetAddress peer)
    {
        if (method == NetworkLockMethod.Skip)
            return;
        if (method != NetworkLockMethod.Nftables)
            throw new CrispException($"network lock {method.ToString().ToLowerInvariant()} is not supported; use --network-lock nftables or skip");
        var (set, element) = Element(local, peer);
        if (!_locked.Add(element))
            return;
        _existedBefore ??= Nft($"list table inet {Table}", out _) == 0;
        if (_locked.Count == 1)
        {
            // The chains run before conntrack (priority raw) so a dropped packet leaves no trace there.
            Run($"add table inet {Table}; " +
                $"add set inet {Table} conns4 {{ type ipv4_addr . inet_service . ipv4_addr . inet_service; }}; " +
                $"add set inet {Table} conns6 {{ type ipv6_addr . inet_service . ipv6_addr . inet_service; }}; " +
                $"add chain inet {Table} input {{ type filter hook input priority raw; policy accept; }}; " +
                $"add chain inet {Table} output {{ type filter hook output priority raw; policy accept; }}; " +
                $"flush chain inet {Table} input; flush chain inet {Table} output; " +
                // Segments crisp forges to put a peer's FIN back (TcpHalfClose) carry CRIU's mark and pass.
                $"add rule inet {Table} input meta mark {TcpHalfClose.Mark} accept; " +
                $"add rule inet {Table} output meta mark {TcpHalfClose.Mark} accept; " +
                $"add rule inet {Table} input ip saddr . tcp sport . ip daddr . tcp dport @conns4 drop; " +
                $"add rule inet {Table} input ip6 saddr . tcp sport . ip6 daddr . tcp dport @conns6 drop; " +
                $"add rule inet {Table} output ip daddr . tcp dport . ip saddr . tcp sport @conns4 drop; " +
                $"add rule inet {Table} output ip6 daddr . tcp dport . ip6 saddr . tcp sport @conns6 drop",
                "creating the lock table");
        }
        Run($"add element inet {Table} {set} {{ {element} }}", $"locking {local} <-> {peer}");
        log.Debug($"network lock: {local} <-> {peer} in table inet {Table}");
    }

    /// <summary>Lets the locked connections' packets through again: removes the table (a dump that lets
    /// its tree run on or fails; a restore that succeeded, also of a dump's table made elsewhere).</summary>
    public void Unlock()
    {
        if (method != NetworkLockMethod.Nftables || _locked.Count == 0)
            return;
        if (Nft($"delete table inet {Table}", out string err) != 0)
            log.Warn($"network lock: deleting table inet {Table} failed: {err}");
        _locked.Clear();
    }

    /// <summary>A failed restore leaves the lock as it found it: a table the dump left stays (the
    /// connections stay quiet for the next try), one the restore made goes.</summary>
    public void Abandon()
    {
        if (_existedBefore == false)
            Unlock();
        _locked.Clear();
    }

    /// <summary>Why the nftables lock cannot be used here (nft missing, or the kernel refuses a table), or
    /// null when it can: a scratch table is made and removed (`crisp check`).</summary>
    public static string? Unavailable()
    {
        try
        {
            string table = $"crisp-check-{Environment.ProcessId}";
            if (Nft($"add table inet {table}", out string err) != 0)
                return $"nft add table: {err}";
            Nft($"delete table inet {table}", out _);
            return null;
        }
        catch (CrispException e)
        {
            return e.Message;
        }
    }

    /// <summary>The set and element of a connection as the input rule sees it: peer . port . local . port.
    /// A v4-mapped IPv6 connection carries IPv4 packets, so it goes into the IPv4 set.</summary>
    private static (string Set, string Element) Element(InetAddress local, InetAddress peer)
    {
        var (l, p) = (Ip(local), Ip(peer));
        bool v4 = l.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork;
        return (v4 ? "conns4" : "conns6", $"{p} . {peer.Port} . {l} . {local.Port}");
    }

    private static System.Net.IPAddress Ip(InetAddress a)
    {
        var sa = a.ToSockaddr();
        var ip = new System.Net.IPAddress(a.Family == AF_INET6 ? sa.AsSpan(8, 16) : sa.AsSpan(4, 4));
        return ip.IsIPv4MappedToIPv6 ? ip.MapToIPv4() : ip;
    }

    private void Run(string command, string what)
    {
        if (Nft(command, out string err) != 0)
            throw new CrispException($"network lock: {what} with nft failed: {err}");
    }

    private static readonly string[] Places = ["/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft", "/usr/local/sbin/nft"];

    /// <summary>Runs `nft COMMAND`; its exit code, stderr's first line in <paramref name="error"/>.</summary>
    private static int Nft(string command, out string error)
    {
        string nft = Places.FirstOrDefault(File.Exists)
            ?? throw new CrispException("network lock: nft not found (install nftables, or pass --network-lock skip)");
        string errFile = Path.Combine(Path.GetTempPath(), $"crisp-nft-{Environment.ProcessId}-{Guid.NewGuid():N}");
        try
        {
            int pid = Spawn.Start(nft, [nft, command], new SpawnOptions
            {
                Opens = [(0, "/dev/null", FileIo.O_RDONLY, 0), (1, "/dev/null", FileIo.O_WRONLY, 0), (2, errFile, FileIo.O_WRONLY | FileIo.O_CREAT | FileIo.O_TRUNC, 0x180)],
            });
            var status = Spawn.Reap(pid);
            error = File.Exists(errFile) ? File.ReadLines(errFile).FirstOrDefault()?.Trim() ?? "" : "";
            return status.Signaled ? 128 + status.TermSignal : status.ExitCode;
        }
        finally
        {
            File.Delete(errFile);
        }
    }
}
