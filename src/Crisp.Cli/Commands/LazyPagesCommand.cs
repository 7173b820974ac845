using Crisp.Cli.CommandLine;
using Crisp.Images;
using Crisp.Images.PageServer;
using Crisp.Images.Pages;
using Crisp.Resources.Memory.Lazy;

namespace Crisp.Cli.Commands;

/// <summary>`crisp lazy-pages -D DIR [--page-server --address A --port P [--tls …]] [-W WORKDIR]`: the daemon that fills the
/// memory of a tree restored with --lazy-pages (CRIU's lazy-pages). It listens on WORKDIR/lazy-pages.socket (the
/// work dir defaults to DIR), serves one restore and exits 0 once every page is in; pages come from DIR's pages
/// files and, with --page-server, the PE_LAZY ones from a `dump --lazy-pages` at A:P. A lost page server or a
/// restore that ends before its tree runs: one line, exit 1, and the restored tree killed. --status-fd is
/// signalled once the socket listens. Test hook: CRISP_LAZY_PUSH_PAUSE_MS=N paces the background push (N ms between
/// 1 MiB pushes).</summary>
public static class LazyPagesCommand
{
    public static int Run(CommandContext ctx)
    {
        var images = ImageDirectory.Open(ctx.RequireImagesDir());
        SocketPageSource? remote = null;
        if (ctx.Args.Has("page-server"))
        {
            string address = ctx.Args.Get("address") ?? throw new UsageException("lazy-pages --page-server needs --address A (and --port P)");
            int port = PageServerCommand.Port(ctx) ?? throw new UsageException("lazy-pages --page-server needs --port P");
            remote = new SocketPageSource(PageServerClient.Connect(address, port, TimeSpan.FromSeconds(10), PageServerCommand.Tls(ctx)));
        }
        string path = ctx.InWorkDir(LazyPagesSocket.Name)!;
        int.TryParse(Environment.GetEnvironmentVariable(LazyPagesDaemon.PushPauseVariable), out int pauseMs);
        using var daemon = new LazyPagesDaemon(images, remote, ctx.Log) { PushPause = TimeSpan.FromMilliseconds(Math.Max(pauseMs, 0)) };
        using var listener = LazyPagesDaemon.Listen(path);
        try
        {
            ctx.Log.Info($"lazy pages: waiting for the restore on {path}{(remote is null ? "" : $", lazy pages from {remote.Peer}")}");
            ctx.StatusFd()?.Ready();
            daemon.Run(listener);
        }
        finally
        {
            File.Delete(path);
        }
        ctx.Log.Info($"lazy pages: all {daemon.TotalPages} pages in: {daemon.FaultPages} on fault, {daemon.PushedPages} pushed, " +
            $"{daemon.ZeroPages} zero pages; {daemon.CopiedWhenReleased} were in when the tree started running; {daemon.RemappedPages} moved by mremap before they were in");
        ctx.Out.WriteLine($"lazy pages: {daemon.TotalPages} pages, {daemon.FaultPages} on fault, {daemon.PushedPages} pushed, {daemon.CopiedWhenReleased} in when the tree started running, " +
            $"{daemon.RemappedPages} moved by mremap while pending");
        return 0;
    }

    /// <summary>dump --lazy-pages: where to serve the lazy pages (--port needed, --address defaults to all).</summary>
    public static (string, int)? ForDump(CommandContext ctx, bool pre)
    {
        if (!ctx.Args.Has("lazy-pages"))
            return null;
        if (pre)
            throw new UsageException("pre-dump does not take --lazy-pages (CRIU's neither): the final dump serves them");
        int port = PageServerCommand.Port(ctx) ?? throw new UsageException("dump --lazy-pages needs --port P (the lazy-pages daemon asks there)");
        if (ctx.Args.Has("page-server"))
            throw new UsageException("dump --lazy-pages serves the pages itself: it does not go with --page-server");
        return (ctx.Args.Get("address") ?? "0.0.0.0", port);
    }
}
