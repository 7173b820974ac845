using System.Buffers.Binary;
using System.Runtime.ExceptionServices;
using System.Text;
using Crisp.Linux;

namespace Crisp.Check;

/// <summary>Plumbing shared by the probes: raw syscalls answering -errno, a throwaway thread for
/// per-thread state (namespaces, loginuid), and running a helper program quietly.</summary>
internal static unsafe class ProbeSys
{
    public const long CLONE_NEWNS = 0x20000, CLONE_NEWNET = 0x40000000;
    public const ulong MS_BIND = 0x1000, MS_REC = 0x4000, MS_PRIVATE = 1 << 18, MS_SLAVE = 1 << 19, MS_SHARED = 1 << 20;
    public const int MNT_DETACH = 2;

    /// <summary>"EPERM (Operation not permitted)" for a -errno result.</summary>
    public static string Err(long r) => Errnos.Describe((int)-r);

    public static byte[] Z(string s) => Encoding.UTF8.GetBytes(s + "\0");

    /// <summary>mount(2); null strings are passed as NULL. Returns 0 or -errno.</summary>
    public static long Mount(string? source, string target, string? fstype, ulong flags, string? data = null)
    {
        fixed (byte* s = source is null ? null : Z(source))
        fixed (byte* t = Z(target))
        fixed (byte* f = fstype is null ? null : Z(fstype))
        fixed (byte* d = data is null ? null : Z(data))
            return RawSyscall.TryCall(Sysno.mount, (long)s, (long)t, (long)f, (long)flags, (long)d);
    }

    public static long Umount(string target)
    {
        fixed (byte* t = Z(target))
            return RawSyscall.TryCall(Sysno.umount2, (long)t, MNT_DETACH);
    }

    /// <summary>Runs <paramref name="work"/> on a new OS thread that ends with it: a namespace the thread
    /// unshares, or a per-task value it changes, goes away with the thread and never touches crisp's own.</summary>
    public static T OnThrowawayThread<T>(Func<T> work)
    {
        T result = default!;
        ExceptionDispatchInfo? error = null;
        var thread = new Thread(() =>
        {
            try { result = work(); }
            catch (Exception e) { error = ExceptionDispatchInfo.Capture(e); }
        }, 256 * 1024) { Name = "crisp-check-probe" };
        thread.Start();
        thread.Join();
        error?.Throw();
        return result;
    }

    /// <summary>Runs <paramref name="work"/> in a fresh mount namespace of a throwaway thread, with every
    /// mount a slave so nothing it mounts propagates out; the namespace dies with the thread.</summary>
    public static ProbeResult InPrivateMountNamespace(Func<ProbeResult> work) => OnThrowawayThread(() =>
    {
        long r = RawSyscall.TryCall(Sysno.unshare, CLONE_NEWNS);
        if (r < 0)
            return ProbeResult.Missing($"unshare(CLONE_NEWNS) for a scratch mount namespace: {Err(r)}");
        r = Mount(null, "/", null, MS_REC | MS_SLAVE);
        return r < 0 ? ProbeResult.Missing($"making / a slave in the scratch namespace: {Err(r)}") : work();
    });

    /// <summary>A scratch tmpfs mounted over an existing directory (/tmp, else /mnt, /run, /dev) of the
    /// private mount namespace this thread is in; hidden there only, and only for this thread.</summary>
    public static string? ScratchTmpfs(out string? why)
    {
        why = "mount tmpfs: none of /tmp, /mnt, /run, /dev exists";
        foreach (string dir in new[] { "/tmp", "/mnt", "/run", "/dev" }.Where(Directory.Exists))
        {
            long r = Mount("crisp-check", dir, "tmpfs", 0, "mode=0700");
            if (r >= 0)
                return dir;
            why = $"mount tmpfs on {dir}: {Err(r)}";
        }
        return null;
    }

    public static string[] PathDirs =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Concat(["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]).Distinct().ToArray();

    /// <summary>The first executable named <paramref name="name"/> in PATH (and the usual sbin dirs).</summary>
    public static string? Which(string name) => PathDirs.Select(d => Path.Combine(d, name)).FirstOrDefault(File.Exists);

    /// <summary>Runs a program with stdin from /dev/null; its exit code and its stdout+stderr.</summary>
    public static (int Code, string Output) RunQuiet(string exe, params string[] args)
    {
        string outFile = Path.Combine(Path.GetTempPath(), $"crisp-check-{Environment.ProcessId}-{Guid.NewGuid():N}");
        try
        {
            int flags = FileIo.O_WRONLY | FileIo.O_CREAT | FileIo.O_APPEND;
            int pid = Spawn.Start(exe, [exe, .. args], new SpawnOptions
            {
                Opens = [(0, "/dev/null", FileIo.O_RDONLY, 0), (1, outFile, flags, 0x180), (2, outFile, flags, 0x180)],
            });
            var status = Spawn.Reap(pid);
            string output = File.Exists(outFile) ? File.ReadAllText(outFile) : "";
            return (status.Signaled ? 128 + status.TermSignal : status.ExitCode, output);
        }
        finally
        {
            File.Delete(outFile);
        }
    }

    /// <summary>The first line of <paramref name="text"/>, trimmed.</summary>
    public static string FirstLine(string text) => text.Split('\n').Select(l => l.Trim()).FirstOrDefault(l => l.Length > 0) ?? "";
}

/// <summary>Builds one netlink request (header, fixed part, attributes, nested attributes).</summary>
internal sealed class NetlinkMessage
{
    private readonly List<byte> _bytes = [];

    public NetlinkMessage(ushort type, ushort flags, int fixedLength)
    {
        _bytes.AddRange(new byte[16]);
        BinaryPrimitives.WriteUInt16LittleEndian(Span(4, 2), type);
        BinaryPrimitives.WriteUInt16LittleEndian(Span(6, 2), flags);
        BinaryPrimitives.WriteUInt32LittleEndian(Span(8, 4), 1);            // seq
        Pad(fixedLength);
    }

    public int Length => _bytes.Count;

    private Span<byte> Span(int at, int length) => System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_bytes).Slice(at, length);

    /// <summary>Writes into the fixed part (after the 16-byte header).</summary>
    public NetlinkMessage Fixed(int offset, ReadOnlySpan<byte> value)
    {
        value.CopyTo(Span(16 + offset, value.Length));
        return this;
    }

    public NetlinkMessage Attr(ushort type, ReadOnlySpan<byte> data)
    {
        int at = Begin(type);
        _bytes.AddRange(data.ToArray());
        End(at);
        return this;
    }

    public NetlinkMessage Attr(ushort type, int value) => Attr(type, BitConverter.GetBytes(value));

    public NetlinkMessage Attr(ushort type, string value) => Attr(type, ProbeSys.Z(value));

    /// <summary>Zero bytes (a struct inside an attribute).</summary>
    public NetlinkMessage Pad(int count)
    {
        _bytes.AddRange(new byte[count]);
        return this;
    }

    /// <summary>Starts an attribute whose payload follows; <see cref="End"/> sets its length.</summary>
    public int Begin(ushort type)
    {
        while (_bytes.Count % 4 != 0)
            _bytes.Add(0);
        int at = _bytes.Count;
        _bytes.AddRange(new byte[4]);
        BinaryPrimitives.WriteUInt16LittleEndian(Span(at + 2, 2), type);
        return at;
    }

    public void End(int at)
    {
        BinaryPrimitives.WriteUInt16LittleEndian(Span(at, 2), (ushort)(_bytes.Count - at));
        while (_bytes.Count % 4 != 0)
            _bytes.Add(0);
    }

    public byte[] ToArray()
    {
        var msg = _bytes.ToArray();
        BinaryPrimitives.WriteUInt32LittleEndian(msg, (uint)msg.Length);
        return msg;
    }
}

/// <summary>Sends netlink requests on crisp's own socket and collects what comes back.</summary>
internal static class ProbeNetlink
{
    public const int NETLINK_ROUTE = 0, NETLINK_SOCK_DIAG = 4;
    public const ushort NLM_F_REQUEST = 1, NLM_F_ACK = 4, NLM_F_DUMP = 0x300, NLM_F_EXCL = 0x200, NLM_F_CREATE = 0x400;
    private const int NLMSG_ERROR = 2, NLMSG_DONE = 3;

    public sealed record Reply(List<(int Type, byte[] Payload)> Messages, int Error);

    public static UnixFd Open(int protocol) => SocketCalls.Socket(SocketCalls.AF_NETLINK, 3 /* SOCK_RAW */, protocol);

    /// <summary>One request; replies until DONE, an error/ack, or (not a dump) the first answer.
    /// <see cref="Reply.Error"/> is the kernel's -errno (0 for an ack or a clean end).</summary>
    public static Reply Request(UnixFd nl, NetlinkMessage message)
    {
        var msg = message.ToArray();
        bool dump = (BinaryPrimitives.ReadUInt16LittleEndian(msg.AsSpan(6)) & NLM_F_DUMP) == NLM_F_DUMP;
        var kernel = new byte[12];
        kernel[0] = SocketCalls.AF_NETLINK;
        SocketCalls.Send(nl.Fd, msg, 0, kernel);
        var messages = new List<(int, byte[])>();
        var buf = new byte[64 * 1024];
        while (true)
        {
            long n = SocketCalls.TryRecv(nl.Fd, buf, 0);
            if (n < 0)
                throw new SyscallException("recv(netlink)", (int)-n);
            for (int at = 0; at + 16 <= n;)
            {
                int len = (int)BinaryPrimitives.ReadUInt32LittleEndian(buf.AsSpan(at));
                int type = BinaryPrimitives.ReadUInt16LittleEndian(buf.AsSpan(at + 4));
                if (len < 16 || at + len > n)
                    return new Reply(messages, 0);
                if (type == NLMSG_DONE)
                    return new Reply(messages, 0);
                if (type == NLMSG_ERROR)
                    return new Reply(messages, BinaryPrimitives.ReadInt32LittleEndian(buf.AsSpan(at + 16)));
                messages.Add((type, buf.AsSpan(at + 16, len - 16).ToArray()));
                at += (len + 3) & ~3;
            }
            if (!dump && messages.Count > 0)
                return new Reply(messages, 0);
        }
    }

    /// <summary>The attributes of a message payload after its fixed part.</summary>
    public static IEnumerable<(int Type, byte[] Data)> Attributes(byte[] payload, int fixedLength)
    {
        int at = (fixedLength + 3) & ~3;
        while (at + 4 <= payload.Length)
        {
            int len = BinaryPrimitives.ReadUInt16LittleEndian(payload.AsSpan(at));
            int type = BinaryPrimitives.ReadUInt16LittleEndian(payload.AsSpan(at + 2)) & 0x3fff;
            if (len < 4 || at + len > payload.Length)
                yield break;
            yield return (type, payload.AsSpan(at + 4, len - 4).ToArray());
            at += (len + 3) & ~3;
        }
    }
}
