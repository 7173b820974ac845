using System.Text;
using Crisp.Linux;
using Microsoft.Win32.SafeHandles;

namespace Crisp.Resources.Mounts;

/// <summary>A tmpfs file with holes, as GNU tar's PAX sparse format 1.0 keeps it (what `tar --sparse
/// --format=posix` writes and GNU tar reads back): the entry is named DIR/GNUSparseFile.0/NAME, its PAX records say
/// GNU.sparse.major=1, minor=0, name and realsize, and its data is the map — the number of data segments, then each
/// one's offset and size, one decimal per line, padded to 512 bytes — followed by the segments' bytes. A file that
/// ends in a hole has a last segment of size 0 at its end. Holes come back as holes.</summary>
public static class SparseTarFile
{
    public const string Major = "GNU.sparse.major", Minor = "GNU.sparse.minor", RealName = "GNU.sparse.name", RealSize = "GNU.sparse.realsize";
    private const int Block = 512;
    private const int ENXIO = 6;

    /// <summary>The data segments of the open file, by SEEK_DATA/SEEK_HOLE; null when it has no hole.</summary>
    public static List<(long Offset, long Length)>? Segments(SafeFileHandle file, long size)
    {
        int fd = (int)file.DangerousGetHandle();
        var segments = new List<(long, long)>();
        long at = 0, data = 0;
        while (at < size)
        {
            long start;
            try { start = FileIo.Seek(fd, at, FileIo.SEEK_DATA); }
            catch (SyscallException e) when (e.Errno == ENXIO) { break; }
            long end = FileIo.Seek(fd, start, FileIo.SEEK_HOLE);
            segments.Add((start, end - start));
            data += end - start;
            at = end;
        }
        FileIo.Seek(fd, 0, FileIo.SEEK_SET);   // a plain file is then read from its start
        return data == size ? null : segments;
    }

    /// <summary>The entry's name and PAX records for <paramref name="name"/> ("./a/b").</summary>
    public static (string EntryName, Dictionary<string, string> Records) Header(string name, long realSize, Dictionary<string, string> attrs)
    {
        int slash = name.LastIndexOf('/');
        string entryName = $"{(slash < 0 ? "." : name[..slash])}/GNUSparseFile.0/{name[(slash + 1)..]}";
        var records = new Dictionary<string, string>(attrs, StringComparer.Ordinal)
        {
            [Major] = "1", [Minor] = "0", [RealName] = name, [RealSize] = realSize.ToString(System.Globalization.CultureInfo.InvariantCulture),
        };
        return (entryName, records);
    }

    /// <summary>The entry's data: the map, then the segments read from the file as the tar writer asks.</summary>
    public static Stream Data(SafeFileHandle file, long size, List<(long Offset, long Length)> segments)
    {
        var map = new StringBuilder();
        var all = segments.ToList();
        if (all.Count == 0 || all[^1].Offset + all[^1].Length < size)
            all.Add((size, 0));
        map.Append(all.Count).Append('\n');
        foreach (var (o, l) in all)
            map.Append(o).Append('\n').Append(l).Append('\n');
        byte[] head = Encoding.ASCII.GetBytes(map.ToString());
        Array.Resize(ref head, (head.Length + Block - 1) / Block * Block);
        return new DataStream(file, head, all);
    }

    /// <summary>Makes <paramref name="path"/> from a sparse entry's data: the segments at their offsets, the rest holes.</summary>
    public static void Extract(Stream data, string path, long realSize, string what)
    {
        long consumed = 0;
        long Next()
        {
            var digits = new StringBuilder();
            for (;;)
            {
                int b = data.ReadByte();
                consumed++;
                if (b < 0 || digits.Length > 20)
                    throw new CrispException($"{what}: a sparse entry's map is cut short or malformed");
                if (b == '\n')
                    break;
                if (b is < '0' or > '9')
                    throw new CrispException($"{what}: a sparse entry's map is not decimal");
                digits.Append((char)b);
            }
            return long.Parse(digits.ToString(), System.Globalization.CultureInfo.InvariantCulture);
        }
        long count = Next();
        if (count > 1 << 20)
            throw new CrispException($"{what}: a sparse entry with {count} segments");
        var segments = new List<(long, long)>();
        for (long i = 0; i < count; i++)
            segments.Add((Next(), Next()));
        for (long pad = (Block - consumed % Block) % Block; pad > 0; pad--)
            if (data.ReadByte() < 0)
                throw new CrispException($"{what}: a sparse entry's map is cut short");
        Write(data, path, realSize, segments, what);
    }

    /// <summary>Makes <paramref name="path"/> of <paramref name="realSize"/> bytes from <paramref name="data"/>, the
    /// segments' bytes one after the other: each written at its offset, the rest left as holes.</summary>
    public static void Write(Stream data, string path, long realSize, IReadOnlyList<(long Offset, long Length)> segments, string what)
    {
        using var file = File.OpenHandle(path, FileMode.CreateNew, FileAccess.Write);
        var buffer = new byte[1 << 16];
        foreach (var (offset, length) in segments)
        {
            if (offset < 0 || length < 0 || offset + length > realSize)
                throw new CrispException($"{what}: a sparse segment {offset}+{length} lies outside the file's {realSize} bytes");
            for (long done = 0; done < length;)
            {
                int n = data.Read(buffer, 0, (int)Math.Min(buffer.Length, length - done));
                if (n <= 0)
                    throw new CrispException($"{what}: a sparse entry's data is cut short");
                RandomAccess.Write(file, buffer.AsSpan(0, n), offset + done);
                done += n;
            }
        }
        RandomAccess.SetLength(file, realSize);
    }

    /// <summary>Map then segments, seekable so the tar writer can size the entry.</summary>
    private sealed class DataStream(SafeFileHandle file, byte[] head, List<(long Offset, long Length)> segments) : Stream
    {
        private readonly long _length = head.Length + segments.Sum(s => s.Length);
        private long _position;

        public override bool CanRead => true;
        public override bool CanSeek => true;
        public override bool CanWrite => false;
        public override long Length => _length;
        public override long Position { get => _position; set => _position = value; }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            if (_position >= _length || buffer.Length == 0)
                return 0;
            if (_position < head.Length)
            {
                int n = (int)Math.Min(buffer.Length, head.Length - _position);
                head.AsSpan((int)_position, n).CopyTo(buffer);
                _position += n;
                return n;
            }
            long at = head.Length;
            foreach (var (o, l) in segments)
            {
                if (_position < at + l)
                {
                    long within = _position - at;
                    int n = (int)Math.Min(buffer.Length, l - within);
                    n = RandomAccess.Read(file, buffer[..n], o + within);
                    if (n <= 0)
                        throw new IOException("a sparse file shrank while it was archived");
                    _position += n;
                    return n;
                }
                at += l;
            }
            return 0;
        }

        public override long Seek(long offset, SeekOrigin origin) => _position = origin switch
        {
            SeekOrigin.Begin => offset,
            SeekOrigin.Current => _position + offset,
            _ => _length + offset,
        };

        public override void Flush() { }
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
