using System.Text;

namespace Crisp.Resources.Mounts;

/// <summary>A tar stream as .NET's TarReader should see it when the archive holds GNU tar's old sparse entries
/// (type 'S', what CRIU's `tar --sparse` writes in its default GNU format). Such an entry keeps its sparse map in
/// the header — four (offset, size) pairs at 386, the isextended flag at 482, the real size at 483 — and, when
/// isextended is set, in extension blocks of 21 pairs (flag at 504) that follow the header and are not counted in
/// its size field; the data is the segments' bytes one after the other. TarReader knows none of that, so this
/// stream walks the archive block by block (every header, then its data rounded to 512 bytes; a PAX 'x' header's
/// size record applies to the next entry), takes the extension blocks out, and hands TarReader the 'S' header as
/// a regular file ('0', checksum made again) whose data is the segments. <see cref="Sparse"/> is the map and real
/// size of the last entry header read, null when it was not an 'S' one.</summary>
public sealed class OldGnuSparseStream(Stream inner, string what) : Stream
{
    private const int Block = 512, TypeOffset = 156, SizeOffset = 124, ChecksumOffset = 148;
    private const int MapOffset = 386, MapEntries = 4, ExtendedOffset = 482, RealSizeOffset = 483;
    private const int ExtensionEntries = 21, ExtensionExtendedOffset = 504;
    private const long MaxSegments = 1 << 20, MaxPaxHeader = 1 << 20;

    private readonly byte[] _block = new byte[Block];
    private int _blockAt = Block, _blockEnd = Block;
    private long _dataLeft, _paddingLeft;
    private long? _paxSize;
    private MemoryStream? _pax;

    /// <summary>The data segments (offset in the file, length) and the file's real size of the last 'S' entry.</summary>
    public (List<(long Offset, long Length)> Segments, long RealSize)? Sparse { get; private set; }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        if (buffer.Length == 0)
            return 0;
        if (_blockAt < _blockEnd)
            return FromBlock(buffer);
        if (_dataLeft > 0)
        {
            int n = inner.Read(buffer[..(int)Math.Min(buffer.Length, _dataLeft)]);
            if (n <= 0)
                return 0;
            _pax?.Write(buffer[..n]);
            _dataLeft -= n;
            if (_dataLeft == 0 && _pax is not null)
                PaxDone();
            return n;
        }
        if (_paddingLeft > 0)
        {
            int n = inner.Read(buffer[..(int)Math.Min(buffer.Length, _paddingLeft)]);
            _paddingLeft -= Math.Max(n, 0);
            return n;
        }
        int got = Fill(_block);
        if (got == 0)
            return 0;
        _blockAt = 0;
        _blockEnd = got;
        if (got == Block)
            Header();
        return FromBlock(buffer);
    }

    private int FromBlock(Span<byte> buffer)
    {
        int n = Math.Min(buffer.Length, _blockEnd - _blockAt);
        _block.AsSpan(_blockAt, n).CopyTo(buffer);
        _blockAt += n;
        return n;
    }

    /// <summary>Reads up to a whole block; fewer bytes only at the end of the stream.</summary>
    private int Fill(Span<byte> block)
    {
        int got = 0;
        while (got < block.Length)
        {
            int n = inner.Read(block[got..]);
            if (n <= 0)
                break;
            got += n;
        }
        return got;
    }

    /// <summary>A header block just read: how much data follows, and an 'S' one rewritten.</summary>
    private void Header()
    {
        if (_block.AsSpan().IndexOfAnyExcept((byte)0) < 0 || !ChecksumHolds(_block))
            return;   // the end-of-archive blocks, or no header at all: TarReader says what is wrong
        byte type = _block[TypeOffset];
        long size = Number(_block, SizeOffset, 12, "size");
        bool meta = type is (byte)'x' or (byte)'g' or (byte)'L' or (byte)'K';
        if (!meta && _paxSize is { } paxSize)
            size = paxSize;
        if (!meta)
        {
            _paxSize = null;
            Sparse = type == 'S' ? ReadMap() : null;
        }
        if (type == 'x' && size <= MaxPaxHeader)
            _pax = new MemoryStream();
        _dataLeft = size;
        _paddingLeft = (Block - size % Block) % Block;
        if (size == 0 && _pax is not null)
            PaxDone();
    }

    /// <summary>The map from the header and its extension blocks (taken out of the stream); the header becomes a
    /// regular file's.</summary>
    private (List<(long, long)>, long) ReadMap()
    {
        string name = Encoding.UTF8.GetString(_block.AsSpan(0, 100)).TrimEnd('\0');
        var segments = new List<(long, long)>();
        void Pairs(byte[] block, int at, int count)
        {
            for (int i = 0; i < count; i++, at += 24)
                if (block[at] != 0)
                    segments.Add((Number(block, at, 12, $"{name}'s sparse offset"), Number(block, at + 12, 12, $"{name}'s sparse size")));
        }
        Pairs(_block, MapOffset, MapEntries);
        bool extended = _block[ExtendedOffset] != 0;
        long realSize = Number(_block, RealSizeOffset, 12, $"{name}'s real size");
        var extension = new byte[Block];
        while (extended)
        {
            if (Fill(extension) != Block)
                throw new CrispException($"{what}: {name}: the archive ends inside its sparse map");
            Pairs(extension, 0, ExtensionEntries);
            extended = extension[ExtensionExtendedOffset] != 0;
            if (segments.Count > MaxSegments)
                throw new CrispException($"{what}: {name}: a sparse map of more than {MaxSegments} segments");
        }
        _block[TypeOffset] = (byte)'0';
        _block.AsSpan(MapOffset, RealSizeOffset + 12 - MapOffset).Clear();
        WriteChecksum(_block);
        return (segments, realSize);
    }

    private void PaxDone()
    {
        foreach (var record in Encoding.UTF8.GetString(_pax!.ToArray()).Split('\n'))
        {
            int space = record.IndexOf(' '), eq = record.IndexOf('=');
            if (space > 0 && eq > space && record[(space + 1)..eq] == "size" && long.TryParse(record[(eq + 1)..], out long v) && v >= 0)
                _paxSize = v;
        }
        _pax = null;
    }

    /// <summary>A numeric field: octal digits (spaces and NULs around them), or GNU's base-256 (high bit of the
    /// first byte set) for values that do not fit.</summary>
    private long Number(byte[] b, int at, int length, string field)
    {
        var f = b.AsSpan(at, length);
        if ((f[0] & 0x80) != 0)
        {
            if (f[0] != 0x80 || f[1..^8].IndexOfAnyExcept((byte)0) >= 0)
                throw new CrispException($"{what}: {field} in a tar header is negative or too large");
            long v = 0;
            foreach (byte x in f[^8..])
                v = (v << 8) | x;
            return v >= 0 ? v : throw new CrispException($"{what}: {field} in a tar header is too large");
        }
        long value = 0;
        bool digits = false;
        foreach (byte x in f)
        {
            if (x is (byte)'0' or (byte)'1' or (byte)'2' or (byte)'3' or (byte)'4' or (byte)'5' or (byte)'6' or (byte)'7')
            {
                value = checked(value * 8 + (x - '0'));
                digits = true;
            }
            else if (x is 0 or (byte)' ' && !digits)
                continue;
            else if (x is 0 or (byte)' ')
                break;
            else
                throw new CrispException($"{what}: {field} in a tar header is not a number");
        }
        return value;
    }

    private static long Sum(byte[] header)
    {
        long sum = 0;
        for (int i = 0; i < Block; i++)
            sum += i is >= ChecksumOffset and < ChecksumOffset + 8 ? ' ' : header[i];
        return sum;
    }

    private bool ChecksumHolds(byte[] header)
    {
        try { return Number(header, ChecksumOffset, 8, "checksum") == Sum(header); }
        catch (CrispException) { return false; }
    }

    private static void WriteChecksum(byte[] header)
    {
        string octal = Convert.ToString(Sum(header), 8).PadLeft(6, '0');
        Encoding.ASCII.GetBytes(octal + "\0 ").CopyTo(header, ChecksumOffset);
    }

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}
