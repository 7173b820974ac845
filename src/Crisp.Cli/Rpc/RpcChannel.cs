using Crisp.Linux;
using Crisp.Rpc.Proto;
using Google.Protobuf;

namespace Crisp.Cli.Rpc;

/// <summary>One CRIU RPC connection: a SOCK_SEQPACKET socket carrying one protobuf message per packet, criu_req
/// from the client and criu_resp back (cr-service.c's recv_criu_msg / send_criu_msg).</summary>
public sealed unsafe class RpcChannel(int fd)
{
    /// <summary>The largest request crisp reads. CRIU has no limit; its real requests (runc's, Podman's) are a few
    /// KiB, and a packet this big is a broken or hostile client rather than a long list of mounts.</summary>
    public const int MaxRequest = 1 << 20;

    private const short POLLIN = 0x1;
    private const int MSG_PEEK = 2, MSG_TRUNC = 0x20;

    public int Fd { get; } = fd;

    /// <summary>The next request; null when the client closed the socket (an empty packet reads the same, as in
    /// CRIU). A packet crisp cannot use is read off and reported as <see cref="RpcRequestException"/>; no answer
    /// within <paramref name="timeout"/> is <see cref="TimeoutException"/>.</summary>
    public criu_req? Receive(TimeSpan? timeout = null)
    {
        if (timeout is { } t)
            WaitReadable(t);
        long length;
        while ((length = SocketCalls.TryRecv(Fd, default, MSG_PEEK | MSG_TRUNC)) == -Errnos.EINTR) { }
        if (length < 0)
            throw new SyscallException("recv (RPC socket)", (int)-length);
        if (length == 0)
        {
            Discard();
            return null;
        }
        if (length > MaxRequest)
        {
            Discard();
            throw new RpcRequestException($"request of {length} bytes is larger than crisp reads ({MaxRequest} bytes)");
        }
        var buffer = new byte[length];
        long got;
        while ((got = SocketCalls.TryRecv(Fd, buffer, MSG_TRUNC)) == -Errnos.EINTR) { }
        if (got < 0)
            throw new SyscallException("recv (RPC socket)", (int)-got);
        criu_req req;
        try
        {
            req = criu_req.Parser.ParseFrom(buffer, 0, (int)got);
        }
        catch (InvalidProtocolBufferException e)
        {
            throw new RpcRequestException($"the request ({got} bytes) is not a criu_req: {e.Message}");
        }
        if (!req.HasType)
            throw new RpcRequestException($"the request ({got} bytes) has no type (criu_req.type is required)");
        if (!req.IsInitialized())
            throw new RpcRequestException($"the {req.Type} request lacks a required field (e.g. criu_opts.images_dir_fd)");
        return req;
    }

    /// <summary>Sends one response; with <paramref name="passFd"/> that descriptor goes along as SCM_RIGHTS.</summary>
    public void Send(criu_resp resp, int passFd = -1)
    {
        byte[] bytes = resp.ToByteArray();
        if (passFd >= 0)
            Sockets.SendFds(Fd, [passFd], bytes);
        else
            SocketCalls.Send(Fd, bytes, 0);
    }

    /// <summary>Reads off (and drops) the packet at the head of the queue.</summary>
    private void Discard()
    {
        byte b = 0;
        SocketCalls.TryRecv(Fd, new Span<byte>(&b, 1), MSG_TRUNC);
    }

    private void WaitReadable(TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        // struct pollfd { int fd; short events; short revents; }
        long pollfd = (uint)Fd | ((long)(ushort)POLLIN << 32);
        while (true)
        {
            int ms = (int)Math.Clamp((deadline - DateTime.UtcNow).TotalMilliseconds, 0, int.MaxValue);
            long r = RawSyscall.TryCall(Sysno.poll, (long)&pollfd, 1, ms);
            if (r == -Errnos.EINTR)
                continue;
            if (r < 0)
                throw new SyscallException("poll (RPC socket)", (int)-r);
            if (r > 0)
                return;   // readable, closed or failed: recv tells which
            throw new TimeoutException($"no answer from the RPC client within {timeout.TotalSeconds:0.###} s");
        }
    }
}

/// <summary>A packet that is not a request crisp can serve; answered with one cr_errmsg.</summary>
public sealed class RpcRequestException : CrispException
{
    /// <summary>CRIU's errno for a request it cannot serve.</summary>
    public const int EBADRQC = 56;

    public RpcRequestException(string message) : base(message) => Errno = EBADRQC;
}
