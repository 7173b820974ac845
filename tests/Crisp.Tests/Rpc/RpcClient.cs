using Crisp.Linux;
using Crisp.Rpc.Proto;
using Crisp.Tests.Support;
using Google.Protobuf;

namespace Crisp.Tests.Rpc;

/// <summary>What runc and libcriu do, written for the tests: a SOCK_SEQPACKET socket pair, the native crisp started as
/// `crisp swrk 3` with the other end as its fd 3, and criu_req / criu_resp one per packet. crisp's fds 0-2 are files
/// of the test's, which must stay empty (in swrk mode they are a container's stdio).</summary>
internal sealed class RpcClient : IDisposable
{
    private const int SwrkFd = 3, MSG_PEEK = 2, MSG_TRUNC = 0x20, MSG_DONTWAIT = 0x40;
    private readonly UnixFd _socket;
    private readonly string _stdio;
    private bool _reaped;

    public int Pid { get; }

    /// <summary>Our end of the socket (a test sends raw packets on it).</summary>
    public int Socket => _socket.Fd;

    /// <summary>Script names of the NOTIFY messages answered by <see cref="Call"/>, in order, with their pids.</summary>
    public List<(string Script, int? Pid)> Notifications { get; } = [];

    public RpcClient(string scratch, IDictionary<string, string>? env = null)
    {
        var (ours, theirs) = Sockets.SocketPair(Sockets.SOCK_SEQPACKET);
        _socket = ours;
        _stdio = Path.Combine(scratch, $"stdio-{Guid.NewGuid():N}");
        Directory.CreateDirectory(_stdio);
        var environment = Environment.GetEnvironmentVariables().Keys.Cast<string>()
            .Select(k => $"{k}={Environment.GetEnvironmentVariable(k)}")
            .Concat((env ?? new Dictionary<string, string>()).Select(kv => $"{kv.Key}={kv.Value}")).ToList();
        using (theirs)
        {
            Pid = Spawn.Start(CrispCli.Exe, ["crisp", "swrk", SwrkFd.ToString()], new SpawnOptions
            {
                Environment = environment,
                Fds = [(theirs.Fd, SwrkFd)],
                Opens = [(0, Stdio(0), 0x42, 0x180), (1, Stdio(1), 0x41, 0x180), (2, Stdio(2), 0x41, 0x180)],   // O_CREAT|O_RDWR / O_CREAT|O_WRONLY
            });
        }
    }

    private string Stdio(int fd) => Path.Combine(_stdio, fd.ToString());

    /// <summary>Sends <paramref name="req"/> and returns the response, answering every NOTIFY on the way (recorded in
    /// <see cref="Notifications"/>) with <paramref name="ack"/>'s verdict (default: success).</summary>
    public criu_resp Call(criu_req req, Func<string, bool>? ack = null)
    {
        Send(req);
        while (true)
        {
            var resp = Receive();
            if (resp.Type != criu_req_type.Notify)
                return resp;
            Notifications.Add((resp.Notify.Script, resp.Notify.HasPid ? resp.Notify.Pid : null));
            Send(new criu_req { Type = criu_req_type.Notify, NotifySuccess = ack?.Invoke(resp.Notify.Script) ?? true });
        }
    }

    public void Send(criu_req req) => SendRaw(req.ToByteArray());

    public void SendRaw(ReadOnlySpan<byte> packet) => SocketCalls.Send(_socket.Fd, packet, 0);

    /// <summary>The next response; fails the test after <paramref name="timeout"/> (default 60 s) or when crisp hung up.</summary>
    public criu_resp Receive(TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(60));
        while (true)
        {
            long length = SocketCalls.TryRecv(_socket.Fd, default, MSG_PEEK | MSG_TRUNC | MSG_DONTWAIT);
            if (length > 0)
            {
                var buffer = new byte[length];
                SocketCalls.TryRecv(_socket.Fd, buffer, 0);
                return criu_resp.Parser.ParseFrom(buffer);
            }
            if (length == 0)
                throw new Xunit.Sdk.XunitException($"crisp swrk closed the socket without answering (exit {ExitCode()})");
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException("no response from crisp swrk");
            Thread.Sleep(5);
        }
    }

    /// <summary>Closes our end and returns crisp's exit code (within 30 s).</summary>
    public int ExitCode()
    {
        _socket.Dispose();
        if (_reaped)
            return -1;
        _reaped = true;
        var status = Integration.Live.ReapWithin(Pid, TimeSpan.FromSeconds(30));
        return status.Signaled ? 128 + status.TermSignal : status.ExitCode;
    }

    /// <summary>Whatever crisp wrote to its fds 0, 1 and 2 (must be nothing).</summary>
    public string StdioText() => string.Concat(Enumerable.Range(0, 3).Select(fd =>
        File.ReadAllText(Stdio(fd)) is { Length: > 0 } text ? $"fd {fd}: {text}\n" : ""));

    /// <summary>crisp exited 0 and wrote nothing to its stdio.</summary>
    public void AssertCleanExit()
    {
        Assert.Equal(0, ExitCode());
        Assert.Equal("", StdioText());
    }

    public void Dispose()
    {
        _socket.Dispose();
        if (!_reaped)
        {
            _reaped = true;
            RawSyscall.TryCall(Sysno.kill, Pid, 9);
            try { Spawn.Reap(Pid); } catch (SyscallException) { }
        }
    }
}
