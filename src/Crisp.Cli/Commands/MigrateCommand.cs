using System.Net;
using System.Net.Sockets;
using Crisp.Cli.CommandLine;
using Crisp.Dump;
using Crisp.Migration;
using Crisp.Restore;

namespace Crisp.Cli.Commands;

/// <summary>`crisp migrate -t PID --to HOST[:PORT] [--iterations N | --until-dirty-below PAGES] [--lazy] [--tls …]` on the
/// source and `crisp receive [--port P] [--address A] [-D DIR] [--tls …]` on the target: one tree moved over one
/// connection of crisp's own (<see cref="MigrationChannel"/>), the source tree killed only once the target runs it.</summary>
public static class MigrateCommand
{
    private static readonly TimeSpan HandshakeTimeout = TimeSpan.FromSeconds(30);

    public static int Run(CommandContext ctx)
    {
        string tree = ctx.Args.Get("tree") ?? throw new UsageException("migrate needs the root of the tree: -t PID");
        if (!int.TryParse(tree, out int pid) || pid <= 0)
            throw new UsageException($"bad pid '{tree}'");
        var (host, port) = Target(ctx.Args.Get("to") ?? throw new UsageException("migrate needs --to HOST[:PORT] (where `crisp receive` listens)"));
        int timeout = ctx.Args.GetInt("timeout", 10);
        if (timeout <= 0)
            throw new UsageException($"bad --timeout {timeout}: seconds, more than 0");
        long? below = ctx.Args.Get("until-dirty-below") is { } b
            ? long.TryParse(b, out long pages) && pages > 0 ? pages : throw new UsageException($"bad --until-dirty-below '{b}': a number of pages")
            : null;
        int iterations = ctx.Args.Get("iterations") is { } it
            ? int.TryParse(it, out int n) && n is >= 0 and <= 100 ? n : throw new UsageException($"bad --iterations '{it}': 0 to 100")
            : below is null ? 3 : 10;
        foreach (var refused in new[] { "page-server", "prev-images-dir", "leave-running", "leave-stopped", "encrypt-key", "sign-key", "freeze-cgroup", "external" })
            if (ctx.Args.Has(refused))
                throw new UsageException($"migrate does not take --{refused}");
        using var tls = PageServerCommand.Tls(ctx);
        var options = new MigrationOptions
        {
            Host = host,
            Port = port,
            Tls = tls,
            Iterations = iterations,
            UntilDirtyBelow = below,
            Lazy = ctx.Args.Has("lazy"),
            Faults = FaultInjection.FromEnvironment(),
            Report = line =>
            {
                ctx.Log.Info($"migrate: {line}");
                Console.Error.WriteLine($"crisp migrate: {line}");
            },
            Dump = new DumpOptions
            {
                RootPid = pid,
                ImagesDir = ".",
                Timeout = TimeSpan.FromSeconds(timeout),
                ShellJob = ctx.Args.Has("shell-job"),
                TcpEstablished = ctx.Args.Has("tcp-established"),
                SkipInFlight = ctx.Args.Has("skip-in-flight"),
                NetworkLock = ctx.NetworkLock() ?? Crisp.Resources.Files.Sockets.Inet.NetworkLockMethod.Nftables,
                ExtUnixSk = ctx.ExtUnixSk(),
                FileLocks = ctx.Args.Has("file-locks"),
                GhostLimit = ctx.Args.Get("ghost-limit") is { } g ? Sizes.Parse(g, "--ghost-limit") : 1 << 20,
            },
        };
        var result = new MigrationSource(options, ctx.Log).Run();
        ctx.Log.Info($"migrated: {result.PreDumps} pre-dump(s), {result.FinalPages} pages in the final dump, tree frozen {result.Frozen.TotalMilliseconds:F0} ms; root {result.TargetRootPid} on the target");
        return 0;
    }

    /// <summary>`crisp receive`: listens, serves one migration, exits 0 once the source has let its tree go (the
    /// restored tree runs on, no longer crisp's child); 1 with one line and nothing left otherwise.</summary>
    public static int Receive(CommandContext ctx)
    {
        int port = PageServerCommand.Port(ctx) ?? DefaultPort;
        string address = ctx.Args.Get("address") ?? "0.0.0.0";
        if (!IPAddress.TryParse(address, out var ip))
            throw new UsageException($"bad --address '{address}': an IPv4 or IPv6 address");
        var modes = ctx.ImagesMode();
        string dir = Path.GetFullPath(ctx.Args.Get("images-dir") ?? ".");
        Crisp.Security.PrivateFile.CreateDirectory(dir, modes.Directory);
        var status = ctx.StatusFd();
        using var tls = PageServerCommand.Tls(ctx);
        using var listener = Crisp.Images.PageServer.TcpListenerSocket.Listen(ip, address, port, "receive");
        ctx.Log.Info($"receive: listening on {address}:{port}, images to {dir}");
        status?.Ready();
        var socket = listener.Accept();
        var source = ((IPEndPoint)socket.RemoteEndPoint!).Address;
        using var channel = Open(socket, tls, ctx.Log);
        // --lazy: the source's second connection, for the pages; from the same address, and soon.
        MigrationChannel AcceptPages()
        {
            if (!listener.Poll(HandshakeTimeout, SelectMode.SelectRead))
                throw new CrispException($"{channel.Peer}: no connection for the lazy pages within {HandshakeTimeout.TotalSeconds:F0} s");
            var next = listener.Accept();
            if (!((IPEndPoint)next.RemoteEndPoint!).Address.Equals(source))
            {
                next.Dispose();
                throw new CrispException($"{channel.Peer}: the lazy pages connection came from {next.RemoteEndPoint}, not from the source");
            }
            return Open(next, tls, ctx.Log);
        }
        int root = new MigrationTarget(channel, dir, modes, o => new Restorer(o, ctx.Log, FaultInjection.FromEnvironment()).Run(), ctx.Log, AcceptPages).Run();
        ctx.Out.WriteLine(root);
        return 0;
    }

    /// <summary>An accepted connection of the source as a channel (TLS when --tls).</summary>
    private static MigrationChannel Open(Socket socket, Crisp.Security.Tls.TlsSettings? tls, Log log)
    {
        socket.NoDelay = true;
        string peer = $"receive: the source {socket.RemoteEndPoint}";
        log.Info($"{peer}: connected");
        var tcp = new NetworkStream(socket, ownsSocket: true) { ReadTimeout = (int)TimeSpan.FromMinutes(10).TotalMilliseconds };
        Stream stream = tls is null ? tcp : tls.Server(tcp, peer, HandshakeTimeout);
        return new MigrationChannel(stream, peer);
    }

    /// <summary>crisp receive's port when none is given.</summary>
    public const int DefaultPort = 7012;

    /// <summary>HOST, HOST:PORT, [V6]:PORT or a bare IPv6 address.</summary>
    private static (string Host, int Port) Target(string to)
    {
        string host = to;
        string? port = null;
        if (to.StartsWith('['))
        {
            int close = to.IndexOf(']');
            if (close < 0)
                throw new UsageException($"bad --to '{to}'");
            host = to[1..close];
            if (close + 1 < to.Length)
                port = to[(close + 1)..].StartsWith(':') ? to[(close + 2)..] : throw new UsageException($"bad --to '{to}'");
        }
        else if (to.Count(c => c == ':') == 1)
        {
            host = to[..to.IndexOf(':')];
            port = to[(to.IndexOf(':') + 1)..];
        }
        if (host.Length == 0)
            throw new UsageException($"bad --to '{to}': HOST[:PORT]");
        if (port is null)
            return (host, DefaultPort);
        return int.TryParse(port, out int p) && p is > 0 and <= 65535 ? (host, p) : throw new UsageException($"bad port in --to '{to}'");
    }
}
