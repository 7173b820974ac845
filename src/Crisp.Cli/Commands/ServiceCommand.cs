using System.Text;
using Crisp.Cli.CommandLine;
using Crisp.Linux;

namespace Crisp.Cli.Commands;

/// <summary>`crisp service --address SOCKET` (CRIU's RPC daemon): listens on a SOCK_SEQPACKET unix socket and serves
/// each connection, one after another, with a `crisp swrk` worker of its own (the same handler, in a fresh process:
/// a dump or restore changes crisp's directory and holds its tracer). Unlike CRIU's, the socket is 0600: asking for a
/// dump or restore over it is asking root. Runs until killed.</summary>
public static class ServiceCommand
{
    private const int WorkerFd = 3;

    public static int Run(CommandContext ctx)
    {
        string address = ctx.Args.Get("address") ?? throw new UsageException("service needs --address SOCKET (the unix socket to listen on)");
        byte[] path = Encoding.UTF8.GetBytes(Path.GetFullPath(address));
        if (path.Length >= 108)
            throw new UsageException($"--address {address}: a unix socket path has at most 107 bytes");
        string exe = Environment.ProcessPath ?? throw new CrispException("can't find crisp's own executable to start workers");
        using var listener = SocketCalls.Socket(SocketCalls.AF_UNIX, Sockets.SOCK_SEQPACKET);
        if (File.Exists(address) && (File.GetAttributes(address) & FileAttributes.Directory) == 0)
            File.Delete(address);   // a socket left by an earlier service (CRIU unlinks it too)
        SocketCalls.Bind(listener.Fd, SocketCalls.UnixAddress(path));
        File.SetUnixFileMode(address, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        SocketCalls.Listen(listener.Fd, 16);
        if (ctx.Args.Get("pidfile") is { } pidfile)
            File.WriteAllText(pidfile, $"{Environment.ProcessId}\n");
        ctx.Log.Info($"The service socket is bound to {address}");
        var env = Environment.GetEnvironmentVariables().Keys.Cast<string>()
            .Where(k => k != SwrkCommand.StandaloneVariable)
            .Select(k => $"{k}={Environment.GetEnvironmentVariable(k)}")
            .Append($"{SwrkCommand.StandaloneVariable}=1").ToList();
        while (true)
        {
            UnixFd connection;
            try
            {
                connection = SocketCalls.Accept(listener.Fd);
            }
            catch (SyscallException e) when (e.Errno == Errnos.EINTR)
            {
                continue;
            }
            int worker;
            using (connection)
                worker = Spawn.Start(exe, [exe, "swrk", WorkerFd.ToString()], new SpawnOptions { Fds = [(connection.Fd, WorkerFd)], Environment = env });
            ctx.Log.Info($"Worker {worker} serves a connection");
            var status = Spawn.Reap(worker);
            ctx.Log.Info($"Worker {worker} exited: {status}");
        }
    }
}
