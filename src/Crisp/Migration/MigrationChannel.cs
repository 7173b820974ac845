using System.Buffers.Binary;
using System.Text;

namespace Crisp.Migration;

/// <summary>What travels on crisp migrate's one connection, source → target unless marked.</summary>
public enum MigrationFrame : uint
{
    /// <summary>Both ways first: magic and protocol version.</summary>
    Hello = 1,
    /// <summary>A checkpoint directory begins: its name (the files after it go there).</summary>
    Directory = 2,
    /// <summary>A file of the current directory: u64 size, its name; then exactly size raw bytes.</summary>
    File = 3,
    /// <summary>A symbolic link of the current directory: name, NUL, target (only `parent` → ../NAME).</summary>
    Link = 4,
    /// <summary>Restore now: u32 flags (<see cref="RestoreFlags"/>), the final directory's name.</summary>
    Restore = 5,
    /// <summary>Target → source: the restored tree runs (u32 its root pid in the target).</summary>
    Running = 6,
    /// <summary>Target → source: the restore failed (the one error line).</summary>
    Failed = 7,
    /// <summary>The source tree is gone: the restored one is the tree now.</summary>
    Done = 8,
    /// <summary>First on a second connection of a --lazy migration: from here on it carries the lazy pages, in CRIU's
    /// page server protocol (the target's lazy-pages daemon asks with PS_IOV_GET, the source answers).</summary>
    Pages = 9,
}

/// <summary>What the target's restore needs to be told (the dump's options a restore must repeat).</summary>
[Flags]
public enum RestoreFlags : uint
{
    None = 0,
    TcpEstablished = 1,
    /// <summary>--lazy: restore with --lazy-pages; the pages come over a second connection (<see cref="MigrationFrame.Pages"/>).</summary>
    Lazy = 2,
}

/// <summary>crisp migrate's own framing over one stream (TCP, or TLS over it): each frame is u32 type, u32 payload
/// length (at most 64 KiB), the payload; a <see cref="MigrationFrame.File"/> is followed by its bytes. Anything
/// else on the wire — another protocol, a frame too large, a connection that ends — is one error naming the
/// peer.</summary>
public sealed class MigrationChannel(Stream stream, string peer) : IDisposable
{
    public const uint Version = 1;
    private const int MaxPayload = 64 << 10;
    private static ReadOnlySpan<byte> Magic => "CRISP-MIGRATE\0\0\0"u8;

    private readonly byte[] _header = new byte[8];
    private readonly byte[] _chunk = GC.AllocateUninitializedArray<byte>(1 << 20);

    /// <summary>Who is at the other end, for messages ("migrate to 10.0.0.2:7000", "receive: 10.0.0.1:41000").</summary>
    public string Peer => peer;

    /// <summary>The stream under the frames (a --lazy migration's pages connection goes on in another protocol).</summary>
    public Stream Stream => stream;

    /// <summary>Bytes of file data sent or received so far.</summary>
    public long FileBytes { get; private set; }

    public void SendHello()
    {
        var payload = new byte[Magic.Length + 4];
        Magic.CopyTo(payload);
        BinaryPrimitives.WriteUInt32LittleEndian(payload.AsSpan(Magic.Length), Version);
        Send(MigrationFrame.Hello, payload);
    }

    /// <summary>The peer's hello: anything else is not crisp migrate at the other end.</summary>
    public void ExpectHello()
    {
        var (type, payload) = Receive("the hello");
        if (type != MigrationFrame.Hello || payload.Length != Magic.Length + 4 || !payload.AsSpan(0, Magic.Length).SequenceEqual(Magic))
            throw new CrispException($"{peer}: the peer does not speak crisp's migration protocol");
        uint version = BinaryPrimitives.ReadUInt32LittleEndian(payload.AsSpan(Magic.Length));
        if (version != Version)
            throw new CrispException($"{peer}: the peer speaks migration protocol version {version}, this crisp {Version}");
    }

    public void Send(MigrationFrame type, ReadOnlySpan<byte> payload)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(_header, (uint)type);
        BinaryPrimitives.WriteUInt32LittleEndian(_header.AsSpan(4), (uint)payload.Length);
        try
        {
            stream.Write(_header);
            stream.Write(payload);
            stream.Flush();
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException)
        {
            throw Lost("sending", e);
        }
    }

    public void Send(MigrationFrame type, string text) => Send(type, Encoding.UTF8.GetBytes(text));

    /// <summary>A file as <see cref="MigrationFrame.File"/>, its bytes streamed in 1 MiB chunks.</summary>
    public void SendFile(string path, string name)
    {
        using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.SequentialScan);
        long size = file.Length;
        var payload = new byte[8 + Encoding.UTF8.GetByteCount(name)];
        BinaryPrimitives.WriteUInt64LittleEndian(payload, (ulong)size);
        Encoding.UTF8.GetBytes(name, payload.AsSpan(8));
        Send(MigrationFrame.File, payload);
        for (long left = size; left > 0;)
        {
            int n = file.Read(_chunk, 0, (int)Math.Min(_chunk.Length, left));
            if (n == 0)
                throw new CrispException($"{path} shrank while it was sent");
            try { stream.Write(_chunk, 0, n); }
            catch (Exception e) when (e is IOException or ObjectDisposedException) { throw Lost("sending images", e); }
            left -= n;
            FileBytes += n;
        }
        try { stream.Flush(); }
        catch (Exception e) when (e is IOException or ObjectDisposedException) { throw Lost("sending images", e); }
    }

    /// <summary>The next frame; the end of the stream is an error naming what was awaited.</summary>
    public (MigrationFrame Type, byte[] Payload) Receive(string what)
    {
        if (!ReadExactly(_header, what, allowEnd: true))
            throw new CrispException($"{peer}: connection closed while waiting for {what}");
        uint type = BinaryPrimitives.ReadUInt32LittleEndian(_header);
        uint length = BinaryPrimitives.ReadUInt32LittleEndian(_header.AsSpan(4));
        if (type is 0 or > (uint)MigrationFrame.Pages || length > MaxPayload)
            throw new CrispException($"{peer}: not crisp's migration protocol (frame type {type}, {length} bytes)");
        var payload = new byte[length];
        ReadExactly(payload, what, allowEnd: false);
        return ((MigrationFrame)type, payload);
    }

    /// <summary>The bytes of a received <see cref="MigrationFrame.File"/> into <paramref name="target"/>.</summary>
    public void ReceiveFileData(Stream target, long size)
    {
        for (long left = size; left > 0;)
        {
            int n = (int)Math.Min(_chunk.Length, left);
            ReadExactly(_chunk.AsSpan(0, n), "the images", allowEnd: false);
            target.Write(_chunk, 0, n);
            left -= n;
            FileBytes += n;
        }
    }

    public void Dispose() => stream.Dispose();

    private bool ReadExactly(Span<byte> buffer, string what, bool allowEnd)
    {
        int got = 0;
        try
        {
            while (got < buffer.Length)
            {
                int n = stream.Read(buffer[got..]);
                if (n == 0)
                {
                    if (got == 0 && allowEnd)
                        return false;
                    throw new CrispException($"{peer}: connection closed in the middle of {what}");
                }
                got += n;
            }
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException)
        {
            throw Lost($"waiting for {what}", e);
        }
        return true;
    }

    private CrispException Lost(string doing, Exception e) =>
        new($"{peer}: connection lost while {doing} ({(e.InnerException ?? e).Message.ReplaceLineEndings(" ")})");
}
