using System.Net;
using System.Net.Sockets;
using Crisp.Cli.CommandLine;
using Crisp.Images;
using Crisp.Images.PageServer;

namespace Crisp.Cli.Commands;

/// <summary>`crisp page-server --port P [--address A] [-D DIR]`: receives one dump's pages (CRIU's protocol) into
/// DIR as pagemap-*.img and pages-*.img, then exits — 0 once the dump said every page was sent, 1 with one line
/// (and nothing kept) when the connection ended early or sent garbage. --status-fd is signalled once listening.</summary>
public static class PageServerCommand
{
    public static int Run(CommandContext ctx)
    {
        int port = Port(ctx) ?? throw new UsageException("page-server needs --port P");
        string address = ctx.Args.Get("address") ?? "0.0.0.0";
        if (!IPAddress.TryParse(address, out var ip))
            throw new UsageException($"bad --address '{address}': an IPv4 or IPv6 address");
        var status = ctx.StatusFd();
        using var tls = Tls(ctx);
        // --encrypt-key: what arrives in the clear (CRIU's protocol carries plain pages) is encrypted as it is written.
        var key = ctx.Args.Get("encrypt-key") is { } k ? Crisp.Security.Encryption.ImageKey.Load(ctx.InWorkDir(k)!) : null;
        // No manifest is written here (the dump writes its own, with its other images): nothing to hash for.
        using var dir = ImageDirectory.Create(ctx.RequireImagesDir(), ctx.ImagesMode(), key, hashesForManifest: false);
        using var listener = Crisp.Images.PageServer.TcpListenerSocket.Listen(ip, address, port, "page server");
        ctx.Log.Info($"page server: listening on {address}:{port}, images to {dir.Path}{(key is null ? "" : $" (encrypted, key id {key.IdText})")}");
        status?.Ready();
        var socket = listener.Accept();
        socket.NoDelay = true;
        ctx.Log.Info($"page server: connection from {socket.RemoteEndPoint}");
        using var stream = tls is null ? new NetworkStream(socket, ownsSocket: true)
            : tls.Server(new NetworkStream(socket, ownsSocket: true), $"page server: the connection from {socket.RemoteEndPoint}", HandshakeTimeout);
        new PageServerSession(stream, dir, ctx.Log, acceptCompression: ctx.Args.Has("compress")).Run();
        return 0;
    }

    private static readonly TimeSpan HandshakeTimeout = TimeSpan.FromSeconds(30);

    /// <summary>--tls with --tls-cacert/--tls-cert/--tls-key/--tls-no-cn-verify (CRIU's names and defaults), loaded
    /// now so that a bad file fails before anything is touched; null without --tls (the other options are then
    /// ignored, as CRIU does).</summary>
    public static Crisp.Security.Tls.TlsSettings? Tls(CommandContext ctx) => ctx.Args.Has("tls")
        ? Crisp.Security.Tls.TlsSettings.Load(ctx.InWorkDir(ctx.Args.Get("tls-cacert")), ctx.InWorkDir(ctx.Args.Get("tls-cert")),
            ctx.InWorkDir(ctx.Args.Get("tls-key")), ctx.Args.Has("tls-no-cn-verify"))
        : null;

    /// <summary>--port for page-server and for dump/pre-dump --page-server.</summary>
    public static int? Port(CommandContext ctx)
    {
        if (ctx.Args.Get("port") is not { } v)
            return null;
        if (!int.TryParse(v, out int port) || port is <= 0 or > 65535)
            throw new UsageException($"bad --port '{v}'");
        return port;
    }

    /// <summary>dump/pre-dump --page-server: the server's address and port (both needed).</summary>
    public static (string, int)? ForDump(CommandContext ctx)
    {
        if (!ctx.Args.Has("page-server"))
            return null;
        string address = ctx.Args.Get("address") ?? throw new UsageException("--page-server needs --address A (and --port P)");
        int port = Port(ctx) ?? throw new UsageException("--page-server needs --port P");
        if (ctx.Args.Has("prev-images-dir"))
            throw new UsageException("--page-server with --prev-images-dir is not supported yet: the parent's pagemaps would be on the server");
        // The images written here are encrypted with the key; the pages travel in CRIU's protocol (in the clear unless
        // --tls), and the server encrypts them on its disk with its own --encrypt-key (the same key, to restore).
        if (ctx.Args.Has("encrypt-key"))
            ctx.Log.Warn($"--encrypt-key with --page-server: the pages travel to {address}:{port} {(ctx.Args.Has("tls") ? "in TLS" : "unencrypted (add --tls)")}; the server encrypts them on its disk only when it was started with --encrypt-key");
        return (address, port);
    }
}
