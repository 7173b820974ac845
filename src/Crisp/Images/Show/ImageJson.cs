using System.Buffers.Binary;
using System.Collections;
using Crisp.Images.Proto;
using Google.Protobuf;
using Google.Protobuf.Reflection;

namespace Crisp.Images.Show;

/// <summary>Renders an image file as the JSON `crit show FILE` prints (crit 3.17), for `crisp show FILE`.</summary>
public static class ImageJson
{
    /// <summary>The text crit prints for <paramref name="path"/>, including its final newline.</summary>
    public static string Render(string path) => PyJson.Serialize(ToTree(path)) + "\n";

    /// <summary>Renders entries already in memory the same way (magic name plus entries).</summary>
    public static string Render(ImageKind kind, IEnumerable<IMessage> entries)
    {
        var list = entries.Select(e => (object)Message(e, false)).ToList();
        return PyJson.Serialize(new PyJson.Obj { { "magic", kind.Name }, { "entries", list } }) + "\n";
    }

    private static PyJson.Obj ToTree(string path)
    {
        // Like crit, the kind comes from the magic, not the file name.
        var kind = DetectKind(path);
        var entries = new List<object>();
        using var reader = ImageReader.Open(path, kind);
        if (kind.Head is { } head)
        {
            if (reader.Read(head) is { } h)
                entries.Add(Message(h, false));
        }
        while (reader.Read(kind.Entry!) is { } entry)
        {
            var obj = Message(entry, false);
            if (kind.Extra == ExtraPayload.PipeData)
                obj.Add("extra", CritFormat.Base64Lines(reader.ReadExtra(((pipe_data_entry)entry).Bytes)));
            else if (kind.Extra == ExtraPayload.SkQueue)
                obj.Add("extra", CritFormat.Base64Lines(reader.ReadExtra(((sk_packet_entry)entry).Length)));
            else if (kind.Extra == ExtraPayload.TcpQueues && entry is tcp_stream_entry t)
                obj.Add("extra", new PyJson.Obj
                {
                    { "inq", CritFormat.Base64Lines(reader.ReadExtra(t.InqLen)) },
                    { "outq", CritFormat.Base64Lines(reader.ReadExtra(t.OutqLen)) },
                });
            else if (kind.Extra == ExtraPayload.GhostData && !((ghost_file_entry)entry).Chunks)
                obj.Add("extra", CritFormat.Base64Lines(reader.ReadExtra(reader.Remaining)));
            entries.Add(obj);
        }
        return new PyJson.Obj { { "magic", kind.Name }, { "entries", entries } };
    }

    private static ImageKind DetectKind(string path)
    {
        byte[] head = new byte[8];
        int n;
        try
        {
            using var f = File.OpenRead(path);
            n = f.ReadAtLeast(head, 8, throwOnEndOfStream: false);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ImageFormatException(path, 0, e is FileNotFoundException or DirectoryNotFoundException ? "file not found" : $"cannot open: {e.Message}", e);
        }
        if (n < 4)
            throw new ImageFormatException(path, 0, n == 0 ? "empty file, no magic" : "file too short for a magic");
        uint magic = BinaryPrimitives.ReadUInt32LittleEndian(head);
        if ((magic == ImageMagic.ImgCommon || magic == ImageMagic.ImgService) && n == 8)
            magic = BinaryPrimitives.ReadUInt32LittleEndian(head.AsSpan(4));
        return ImageKind.FromMagic(magic)
            ?? throw new ImageFormatException(path, 0, $"unknown magic 0x{magic:x} (a raw image such as pages-N.img has none)");
    }

    /// <summary>
    /// Fields newer than crit 3.17's .proto files: crit parses them as unknown fields and prints
    /// nothing for them, so neither do we.
    /// </summary>
    private static readonly HashSet<string> UnknownToCrit = new(StringComparer.Ordinal)
    {
        "criu.creds_entry.no_new_privs",
        "criu.creds_entry.cap_amb",
        "criu.inventory_entry.plugins_entry",
    };

    private static PyJson.Obj Message(IMessage message, bool hex)
    {
        var obj = new PyJson.Obj();
        foreach (var field in message.Descriptor.Fields.InFieldNumberOrder())
        {
            if (UnknownToCrit.Contains(field.FullName))
                continue;
            var value = field.Accessor.GetValue(message);
            if (field.IsRepeated)
            {
                var items = (IList)value;
                if (items.Count == 0)
                    continue;
                var list = new List<object>(items.Count);
                foreach (var item in items)
                    list.Add(Value(field, item!, hex));
                obj.Add(field.Name, list);
            }
            else if (field.Accessor.HasValue(message))
            {
                obj.Add(field.Name, Value(field, value, hex));
            }
        }
        return obj;
    }

    private static object Value(FieldDescriptor field, object value, bool hex)
    {
        var opts = field.GetOptions()?.GetExtension(OptsExtensions.Criu);
        hex = hex || (opts?.Hex ?? false);
        switch (field.FieldType)
        {
            case FieldType.Message:
            case FieldType.Group:
                return Message((IMessage)value, hex);
            case FieldType.Bytes:
                var bytes = ((ByteString)value).Span;
                return opts?.Conv == "unix_name" ? CritFormat.QuotedPrintable(bytes) : CritFormat.Base64Lines(bytes);
            case FieldType.Enum:
                int number = Convert.ToInt32(value, System.Globalization.CultureInfo.InvariantCulture);
                return field.EnumType.FindValueByNumber(number)?.Name ?? (object)(Int128)number;
            case FieldType.Bool:
                return (bool)value;
            case FieldType.String:
                return (string)value;
        }
        Int128 n = value switch
        {
            int i => i,
            uint u => u,
            long l => l,
            ulong ul => ul,
            _ => throw new ArgumentException($"{field.FullName}: unsupported type {field.FieldType}"),
        };
        if (hex)
            return CritFormat.Hex(n);
        if (opts is null)
            return n;
        if (opts.Dev)
            return CritFormat.Dev(n, opts.Odev);
        if (opts.HasFlags && opts.Flags.Length > 0)
            return CritFormat.Flags(opts.Flags, n);
        if (opts.HasDict && opts.Dict.Length > 0)
            return CritFormat.Dict(opts.Dict, field.Name, n);
        return n;
    }
}
