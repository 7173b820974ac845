using Crisp.Cli.CommandLine;
using Crisp.Cli.Rpc;
using Crisp.Linux;

namespace Crisp.Cli.Commands;

/// <summary>`crisp swrk FD` (CRIU's `criu swrk FD`, started by runc, Podman and libcriu): serves CRIU RPC requests on
/// the SOCK_SEQPACKET socket the caller passed as FD. Never writes to fds 0-2 (the container's stdio): the usage line
/// for a missing FD is the only text it prints. Exits 0 after its last response.</summary>
public static class SwrkCommand
{
    /// <summary>Set by `crisp service` for its workers: CRIU refuses rst_sibling and inherit_fd there.</summary>
    public const string StandaloneVariable = "CRISP_RPC_STANDALONE";

    /// <summary>Seconds to wait for the client's ack of a notification (default 300).</summary>
    public const string NotifyTimeoutVariable = "CRISP_RPC_NOTIFY_TIMEOUT";

    private const int F_SETFD = 2, FD_CLOEXEC = 1;

    public static int Run(ParsedArguments args)
    {
        if (args.Positionals.Count != 2 || !int.TryParse(args.Positionals[1], out int fd) || fd < 0)
        {
            Console.Error.WriteLine("Usage: crisp swrk <fd>");
            return 1;
        }
        // Not passed on to what crisp starts (puppets, scripts); fails when FD is not open.
        if (RawSyscall.TryCall(Sysno.fcntl, fd, F_SETFD, FD_CLOEXEC) < 0)
            return 1;
        bool standalone = Environment.GetEnvironmentVariable(StandaloneVariable) == "1";
        var timeout = TimeSpan.FromSeconds(300);
        if (double.TryParse(Environment.GetEnvironmentVariable(NotifyTimeoutVariable), System.Globalization.CultureInfo.InvariantCulture, out double s) && s > 0)
            timeout = TimeSpan.FromSeconds(s);
        try
        {
            return new RpcSession(new RpcChannel(fd), standalone, timeout).Serve();
        }
        catch (Exception)
        {
            return 1;   // nowhere to report it: the socket failed, and stderr is not ours
        }
    }
}
