using System.Buffers.Binary;
using Crisp.Images.Proto;
using Google.Protobuf;

namespace Crisp.Images.Show;

/// <summary>
/// An image file as the JSON current crit prints: `crit show FILE` / `crit decode --pretty` (indented, pretty
/// numbers) or `crit decode` (one line, plain numbers). Raw payloads that follow entries go into "extra" as crit
/// carries them (base64; tcp-stream as {"inq", "outq"}; ghost files whole or per chunk).
/// </summary>
public static class ImageJson
{
    /// <summary>The text `crit show` prints for <paramref name="path"/>, including its final newline.</summary>
    /// <param name="key">Decrypts an encrypted image (--encrypt-key); null: plain images only.</param>
    /// <param name="showSecrets">Print the payloads that hold what the process had in its pipes, sockets, message
    /// queues, shared memory, terminals and deleted files; false puts a marker with the length in their place.</param>
    public static string Render(string path, Security.Encryption.ImageKey? key = null, bool showSecrets = true) =>
        PyJson.Serialize(Decode(path, pretty: true, key, showSecrets)) + "\n";

    /// <summary>`crit decode [--pretty]` of <paramref name="path"/>, without a final newline.</summary>
    public static string Render(string path, bool pretty, Security.Encryption.ImageKey? key = null) =>
        PyJson.Serialize(Decode(path, pretty, key, showSecrets: true), indent: pretty);

    /// <summary>What stands for a payload left out: its length, and how to see it.</summary>
    public static string Withheld(long bytes) => $"<sensitive: {bytes} bytes; --show-secrets prints them>";

    /// <summary>Renders entries already in memory the same way (magic name plus entries).</summary>
    public static string Render(ImageKind kind, IEnumerable<IMessage> entries)
    {
        var list = entries.Select(e => (object)EntryJson.ToJson(e, pretty: true)).ToList();
        return PyJson.Serialize(new PyJson.Obj { { "magic", kind.Name }, { "entries", list } }) + "\n";
    }

    private static PyJson.Obj Decode(string path, bool pretty, Security.Encryption.ImageKey? key, bool showSecrets)
    {
        // Like crit, the kind comes from the magic, not the file name (of the plaintext, when it is encrypted).
        var kind = DetectKind(path, key);
        var entries = new List<object>();
        using var reader = ImageReader.Open(path, kind, key);
        object Payload(byte[] raw) => showSecrets || raw.Length == 0 ? CritFormat.Base64Lines(raw) : Withheld(raw.Length);
        if (kind.Head is { } head && reader.Read(head) is { } h)
            entries.Add(EntryJson.ToJson(h, pretty));
        while (reader.Read(kind.Entry!) is { } entry)
        {
            var obj = EntryJson.ToJson(entry, pretty);
            switch (kind.Extra, entry)
            {
                case (ExtraPayload.PipeData, pipe_data_entry p):
                    obj.Add("extra", Payload(reader.ReadExtra(p.Bytes)));
                    break;
                case (ExtraPayload.SkQueue, sk_packet_entry q):
                    obj.Add("extra", Payload(reader.ReadExtra(q.Length)));
                    break;
                case (ExtraPayload.TcpQueues, tcp_stream_entry t):
                    obj.Add("extra", new PyJson.Obj
                    {
                        { "inq", Payload(reader.ReadExtra(t.InqLen)) },
                        { "outq", Payload(reader.ReadExtra(t.OutqLen)) },
                    });
                    break;
                case (ExtraPayload.IpcSemValues, ipc_sem_entry sem):
                {
                    var raw = reader.ReadExtra((sem.Nsems * 2 + 7) / 8 * 8);
                    obj.Add("extra", Enumerable.Range(0, (int)sem.Nsems).Select(i => (object)(Int128)BinaryPrimitives.ReadUInt16LittleEndian(raw.AsSpan(i * 2))).ToList());
                    break;
                }
                case (ExtraPayload.IpcMsgQueue, ipc_msg_entry queue):
                {
                    // crit's form: [message, base64 text, message, base64 text, …]
                    var messages = new List<object>();
                    for (uint i = 0; i < queue.Qnum; i++)
                    {
                        var m = reader.Read<ipc_msg>() ?? throw new ImageFormatException(path, reader.Position, $"queue {queue.Desc.Id}: {queue.Qnum} messages listed, {i} present");
                        var text = reader.ReadExtra((m.Msize + 7L) / 8 * 8);
                        messages.Add(EntryJson.ToJson(m, pretty));
                        messages.Add(Payload(text.AsSpan(0, (int)m.Msize).ToArray()));
                    }
                    obj.Add("extra", messages);
                    break;
                }
                case (ExtraPayload.IpcShmData, ipc_shm_entry shm) when !(shm.HasInPagemaps && shm.InPagemaps):
                {
                    var raw = reader.ReadExtra(((long)shm.Size + 3) / 4 * 4);
                    obj.Add("extra", Payload(raw.AsSpan(0, (int)shm.Size).ToArray()));
                    break;
                }
                case (ExtraPayload.GhostData, ghost_file_entry g) when !g.Chunks:
                    obj.Add("extra", Payload(reader.ReadExtra(reader.Remaining)));
                    break;
                case (ExtraPayload.GhostData, ghost_file_entry):
                    entries.Add(obj);
                    while (reader.Read<ghost_chunk_entry>() is { } chunk)
                    {
                        var c = EntryJson.ToJson(chunk, pretty);
                        c.Add("extra", Payload(reader.ReadExtra((long)chunk.Len)));
                        entries.Add(c);
                    }
                    continue;
            }
            if (entry is tty_data_entry tty && !showSecrets)
                Withhold(obj, "data", tty.Data.Length);   // what was typed or printed and not yet read
            if (entry is ipc_var_entry { PosixMqs.Count: > 0 } ipcVar && !showSecrets)
                WithholdQueuedMessages(obj, ipcVar);
            entries.Add(obj);
        }
        return new PyJson.Obj { { "magic", kind.Name }, { "entries", entries } };
    }

    /// <summary>The text of every message queued in a POSIX message queue (crisp's part of ipcns-var).</summary>
    private static void WithholdQueuedMessages(PyJson.Obj obj, ipc_var_entry entry)
    {
        if (obj.FirstOrDefault(kv => kv.Key == "posix_mqs").Value is not List<object> queues)
            return;
        for (int q = 0; q < queues.Count && q < entry.PosixMqs.Count; q++)
        {
            if (queues[q] is not PyJson.Obj queue || queue.FirstOrDefault(kv => kv.Key == "msgs").Value is not List<object> msgs)
                continue;
            for (int m = 0; m < msgs.Count && m < entry.PosixMqs[q].Msgs.Count; m++)
                if (msgs[m] is PyJson.Obj msg)
                    Withhold(msg, "data", entry.PosixMqs[q].Msgs[m].Data.Length);
        }
    }

    private static void Withhold(PyJson.Obj obj, string field, long bytes)
    {
        int i = obj.FindIndex(kv => kv.Key == field);
        if (i >= 0)
            obj[i] = new(field, Withheld(bytes));
    }

    /// <summary>The kind a file's magics name (IMG_SERVICE heads stats images); one line naming the file otherwise.</summary>
    public static ImageKind DetectKind(string path, Security.Encryption.ImageKey? key = null)
    {
        byte[] head = new byte[8];
        int n;
        try
        {
            using var f = Security.Encryption.StoredFile.OpenStream(File.OpenHandle(path), path, key);
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
        if (magic == ImageMagic.Stats)
            return ImageKind.Stats;
        return ImageKind.FromMagic(magic)
            ?? throw new ImageFormatException(path, 0, $"unknown magic 0x{magic:x}: a raw image such as pages-N.img has none (crit does not decode those either; its pagemap-PID.img describes it)");
    }
}
