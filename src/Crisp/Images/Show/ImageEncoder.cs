using System.Buffers.Binary;
using System.Text.Json;
using Crisp.Images.Proto;
using Google.Protobuf;

namespace Crisp.Images.Show;

/// <summary>
/// `crit encode`: crit-shaped JSON (plain or pretty, as <see cref="ImageJson"/> writes it) back into an image
/// file: the magics (inventory its own only, stats IMG_SERVICE, the rest IMG_COMMON), each entry framed by its
/// length, and the "extra" payloads where crit puts them. A payload whose length disagrees with its entry is
/// refused, so an edit cannot silently produce an image the restore misreads.
/// </summary>
public static class ImageEncoder
{
    /// <summary>The image bytes for <paramref name="json"/>; <paramref name="source"/> names the input in errors.</summary>
    public static byte[] Encode(string json, string source)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(json, new JsonDocumentOptions { MaxDepth = 256 });
        }
        catch (JsonException e)
        {
            throw new CrispException($"{source}: not JSON ({e.Message.Split('\n')[0]}); encode expects what decode writes");
        }
        using (doc)
            return Encode(doc.RootElement, source);
    }

    private static byte[] Encode(JsonElement root, string source)
    {
        if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("magic", out var magicJson) || magicJson.ValueKind != JsonValueKind.String)
            throw new CrispException($"{source}: expected {{\"magic\": NAME, \"entries\": [...]}} as decode writes it");
        string name = magicJson.GetString()!;
        var kind = (name == ImageKind.Stats.Name ? ImageKind.Stats : ImageKind.All.FirstOrDefault(k => k.Name == name && !k.IsRaw))
            ?? throw new CrispException($"{source}: unknown magic \"{name}\" (crisp knows {string.Join(", ", ImageKind.All.Where(k => !k.IsRaw).Select(k => k.Name).Distinct())}, STATS)");
        if (!root.TryGetProperty("entries", out var entries) || entries.ValueKind != JsonValueKind.Array)
            throw new CrispException($"{source}: \"entries\" must be a list");

        using var output = new MemoryStream();
        if (kind == ImageKind.Stats)
            Word(output, ImageMagic.ImgService);
        else if (kind.HasCommonMagic)
            Word(output, ImageMagic.ImgCommon);
        Word(output, kind.Magic);

        var items = entries.EnumerateArray().ToList();
        bool ghostChunks = false;
        for (int i = 0; i < items.Count; i++)
        {
            string at = $"{source}: entries[{i}]";
            var descriptor = i == 0 && kind.Head is { } head ? head
                : ghostChunks ? ghost_chunk_entry.Descriptor
                : kind.Entry!;
            var message = descriptor.Parser.ParseFrom(ByteString.Empty);
            EntryJson.FromJson(items[i], message, at);
            Entry(output, message);
            ghostChunks |= message is ghost_file_entry { Chunks: true };
            Extra(output, kind, message, items[i], at);
        }
        return output.ToArray();
    }

    private static void Extra(Stream output, ImageKind kind, IMessage entry, JsonElement json, string at)
    {
        json.TryGetProperty("extra", out var extra);
        switch (kind.Extra, entry)
        {
            case (ExtraPayload.PipeData, pipe_data_entry p):
                Payload(output, extra, at, p.Bytes, "bytes");
                break;
            case (ExtraPayload.SkQueue, sk_packet_entry q):
                Payload(output, extra, at, q.Length, "length");
                break;
            case (ExtraPayload.TcpQueues, tcp_stream_entry t):
                if (extra.ValueKind != JsonValueKind.Object || !extra.TryGetProperty("inq", out var inq) || !extra.TryGetProperty("outq", out var outq))
                    throw new CrispException($"{at}.extra: expected {{\"inq\": BASE64, \"outq\": BASE64}}");
                Payload(output, inq, at + ".extra.inq", t.InqLen, "inq_len");
                Payload(output, outq, at + ".extra.outq", t.OutqLen, "outq_len");
                break;
            case (ExtraPayload.IpcSemValues, ipc_sem_entry sem):
            {
                if (extra.ValueKind != JsonValueKind.Array || extra.GetArrayLength() != sem.Nsems)
                    throw new CrispException($"{at}.extra: expected a list of {sem.Nsems} semaphore values (nsems)");
                var values = new byte[(sem.Nsems * 2 + 7) / 8 * 8];
                int i = 0;
                foreach (var v in extra.EnumerateArray())
                {
                    if (!v.TryGetUInt16(out ushort value))
                        throw new CrispException($"{at}.extra[{i}]: a semaphore value is 0..65535");
                    BinaryPrimitives.WriteUInt16LittleEndian(values.AsSpan(i++ * 2), value);
                }
                output.Write(values);
                break;
            }
            case (ExtraPayload.IpcMsgQueue, ipc_msg_entry queue):
            {
                // crit's form: [message, base64 text, …], qnum pairs
                if (extra.ValueKind != JsonValueKind.Array || extra.GetArrayLength() != queue.Qnum * 2)
                    throw new CrispException($"{at}.extra: expected {queue.Qnum} (message, base64 text) pairs (qnum)");
                var items = extra.EnumerateArray().ToList();
                for (int i = 0; i < items.Count; i += 2)
                {
                    var msg = new ipc_msg();
                    EntryJson.FromJson(items[i], msg, $"{at}.extra[{i}]");
                    Entry(output, msg);
                    Payload(output, items[i + 1], $"{at}.extra[{i + 1}]", msg.Msize, "msize");
                    output.Write(new byte[(msg.Msize + 7) / 8 * 8 - msg.Msize]);
                }
                break;
            }
            case (ExtraPayload.IpcShmData, ipc_shm_entry shm) when !(shm.HasInPagemaps && shm.InPagemaps):
                Payload(output, extra, at, (long)shm.Size, "size");
                output.Write(new byte[((long)shm.Size + 3) / 4 * 4 - (long)shm.Size]);
                break;
            case (ExtraPayload.GhostData, ghost_file_entry { Chunks: false }):
                Payload(output, extra, at, null, "");
                break;
            case (ExtraPayload.GhostData, ghost_chunk_entry c):
                Payload(output, extra, at, (long)c.Len, "len");
                break;
            default:
                if (extra.ValueKind != JsonValueKind.Undefined)
                    throw new CrispException($"{at}.extra: {kind.Name} entries carry no payload");
                break;
        }
    }

    /// <summary>Writes a base64 payload, checking its length against the entry's field when it has one.</summary>
    private static void Payload(Stream output, JsonElement extra, string at, long? expected, string field)
    {
        if (extra.ValueKind == JsonValueKind.Undefined && expected is null or 0)
            return;
        if (extra.ValueKind != JsonValueKind.String)
            throw new CrispException($"{at}: the payload (\"extra\", base64) is missing");
        byte[] data;
        try
        {
            data = CritFormat.FromBase64Lines(extra.GetString()!);
        }
        catch (FormatException)
        {
            throw new CrispException($"{at}: \"extra\" is not base64");
        }
        if (expected is { } n && data.Length != n)
            throw new CrispException($"{at}: the payload has {data.Length} bytes but {field} says {n}; change both together");
        output.Write(data);
    }

    private static void Entry(Stream output, IMessage message)
    {
        byte[] bytes = message.ToByteArray();
        Word(output, (uint)bytes.Length);
        output.Write(bytes);
    }

    private static void Word(Stream output, uint value)
    {
        Span<byte> b = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(b, value);
        output.Write(b);
    }
}
