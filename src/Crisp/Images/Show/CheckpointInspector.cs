using System.Globalization;
using System.Text;
using System.Text.Json;
using Crisp.Images.Proto;

namespace Crisp.Images.Show;

/// <summary>
/// What `checkpointctl inspect` shows of a checkpoint, for `crisp inspect`: the container (name, id, image, runtime,
/// times, from Podman's config.dump and the OCI spec.dump, where present), the process tree with each task's argv
/// and environment read from its dumped pages (mm_arg_* / mm_env_*), its open files and sockets, the mounts when
/// the checkpoint has them, and the dump's statistics. As a tree of text or as JSON.
/// </summary>
public sealed class CheckpointInspector
{
    private readonly string _images;
    private readonly string? _meta;
    private readonly string _source;

    /// <param name="images">The images directory.</param>
    /// <param name="meta">Where config.dump, spec.dump and stats-dump may be (an archive's top level); null: the images dir.</param>
    /// <param name="source">What the user named (for the header).</param>
    public CheckpointInspector(string images, string? meta, string source) => (_images, _meta, _source) = (images, meta, source);

    /// <summary>--encrypt-key: reads an encrypted checkpoint.</summary>
    public Security.Encryption.ImageKey? Key { get; init; }

    /// <summary>--show-secrets: print argv and environment values (they hold tokens and passwords as often as not);
    /// otherwise argv is counted and each variable shows only its name.</summary>
    public bool ShowSecrets { get; init; }

    private const string Withheld = "<sensitive>";

    private string ArgvText(IReadOnlyCollection<string?> argv) =>
        ShowSecrets ? string.Join(' ', argv) : $"<sensitive: {argv.Count} args; --show-secrets prints them>";

    private List<string> EnvLines(List<string> env) =>
        ShowSecrets ? env : env.Select(e => e.IndexOf('=') is var eq and >= 0 ? e[..(eq + 1)] + Withheld : Withheld).ToList();

    public string Text()
    {
        var sb = new StringBuilder();
        sb.Append(_source).Append('\n');
        var container = Container();
        if (container.Count > 0)
        {
            sb.Append("├── container\n");
            Items(sb, container.Select(c => $"{c.Key}: {c.Value}"));
        }
        if (Stats() is { } stats)
        {
            sb.Append("├── dump statistics\n");
            Items(sb, stats.Select(st => $"{st.Key}: {st.Value}"));
        }
        var mounts = Mounts();
        sb.Append(CultureInfo.InvariantCulture, $"├── mounts: {(mounts is null ? "none in this checkpoint" : mounts.Count.ToString(CultureInfo.InvariantCulture))}\n");
        Items(sb, mounts ?? []);
        sb.Append("└── process tree\n");
        var x = CheckpointExplorer.Open(_images, Key);
        var pids = x.Tree.Select(t => t.Pid).ToHashSet();
        foreach (var root in x.Tree.Where(t => t.Ppid == 0 || !pids.Contains(t.Ppid)))
            TaskText(sb, x, root, "    ");
        return sb.ToString();
    }

    /// <summary>A section's lines under its heading, the last one closing the branch.</summary>
    private static void Items(StringBuilder sb, IEnumerable<string> lines)
    {
        var list = lines.ToList();
        for (int i = 0; i < list.Count; i++)
            sb.Append(i == list.Count - 1 ? "│   └── " : "│   ├── ").Append(list[i]).Append('\n');
    }

    private void TaskText(StringBuilder sb, CheckpointExplorer x, pstree_entry t, string indent)
    {
        var task = Task(x, t);
        sb.Append(CultureInfo.InvariantCulture, $"{indent}[{t.Pid}] {task.Comm}\n");
        string inner = indent + "│   ";
        sb.Append(CultureInfo.InvariantCulture, $"{inner}cmdline: {(task.Argv is null ? "(not in the dumped pages)" : ArgvText(task.Argv))}\n");
        if (task.Environ is { } env)
        {
            sb.Append(CultureInfo.InvariantCulture, $"{inner}environment:\n");
            foreach (var e in EnvLines(env))
                sb.Append(CultureInfo.InvariantCulture, $"{inner}    {e}\n");
        }
        sb.Append(CultureInfo.InvariantCulture, $"{inner}ppid {t.Ppid}, pgid {t.Pgid}, sid {t.Sid}, threads {string.Join(',', t.Threads)}\n");
        sb.Append(CultureInfo.InvariantCulture, $"{inner}files:\n");
        foreach (var (fd, file) in task.Files)
            sb.Append(CultureInfo.InvariantCulture, $"{inner}    {fd,5}: {file}\n");
        foreach (var kid in x.Tree.Where(k => k.Ppid == t.Pid && k.Pid != t.Pid))
            TaskText(sb, x, kid, indent + "    ");
    }

    public string Json()
    {
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteString("source", _source);
            var container = Container();
            if (container.Count > 0)
            {
                w.WriteStartObject("container");
                foreach (var (k, v) in container)
                    w.WriteString(k, v);
                w.WriteEndObject();
            }
            if (Stats() is { } stats)
            {
                w.WriteStartObject("dump_statistics");
                foreach (var (k, v) in stats)
                    w.WriteNumber(k, v);
                w.WriteEndObject();
            }
            if (Mounts() is { } mounts)
            {
                w.WriteStartArray("mounts");
                foreach (var m in mounts)
                    w.WriteStringValue(m);
                w.WriteEndArray();
            }
            w.WriteStartArray("tasks");
            var x = CheckpointExplorer.Open(_images, Key);
            foreach (var t in x.Tree)
            {
                var task = Task(x, t);
                w.WriteStartObject();
                w.WriteNumber("pid", t.Pid);
                w.WriteNumber("ppid", t.Ppid);
                w.WriteNumber("pgid", t.Pgid);
                w.WriteNumber("sid", t.Sid);
                w.WriteStartArray("threads");
                foreach (var tid in t.Threads)
                    w.WriteNumberValue(tid);
                w.WriteEndArray();
                w.WriteString("comm", task.Comm);
                if (ShowSecrets || task.Argv is null)
                    Strings(w, "cmdline", task.Argv);
                else
                    w.WriteString("cmdline", ArgvText(task.Argv));
                Strings(w, "environment", task.Environ is null ? null : EnvLines(task.Environ));
                w.WriteStartObject("files");
                foreach (var (fd, file) in task.Files)
                    w.WriteString(fd, file);
                w.WriteEndObject();
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(stream.ToArray()) + "\n";
    }

    private static void Strings(Utf8JsonWriter w, string name, List<string>? values)
    {
        if (values is null)
        {
            w.WriteNull(name);
            return;
        }
        w.WriteStartArray(name);
        foreach (var v in values)
            w.WriteStringValue(v);
        w.WriteEndArray();
    }

    private sealed record TaskFacts(string Comm, List<string>? Argv, List<string>? Environ, List<(string Fd, string File)> Files);

    private TaskFacts Task(CheckpointExplorer x, pstree_entry t)
    {
        using var dir = ImageDirectory.Open(_images, Key);
        string comm = dir.ReadOne<core_entry>(ImageFile.Core(t.Pid)).Tc?.Comm ?? "?";
        List<string>? argv = null, env = null;
        if (dir.Exists(ImageFile.Mm(t.Pid)) && dir.Exists(ImageFile.Pagemap(t.Pid)))
        {
            var mm = dir.ReadOne<mm_entry>(ImageFile.Mm(t.Pid));
            try
            {
                using var pages = dir.OpenPagemap(t.Pid);
                argv = Strings(pages, mm.MmArgStart, mm.MmArgEnd);
                env = Strings(pages, mm.MmEnvStart, mm.MmEnvEnd);
            }
            catch (Exception e) when (e is CrispException or IOException)
            {
                // Encrypted pages without the key, or no pages file: the rest is still worth showing.
            }
        }
        return new TaskFacts(comm, argv, env, x.FilesOf(t.Pid));
    }

    /// <summary>The NUL-separated strings stored in [start, end) of the task's memory; null when those pages were not
    /// dumped (an area nobody wrote to is not stored).</summary>
    private static List<string>? Strings(PagemapReader pages, ulong start, ulong end)
    {
        if (end <= start || end - start > 1 << 20)
            return null;
        var bytes = new byte[end - start];
        ulong covered = 0;
        foreach (var (vaddr, length, offset, source) in pages.Resolve(start, end))
        {
            pages.ReadStored(bytes.AsSpan((int)(vaddr - start), (int)length), offset, source);
            covered += length;
        }
        if (covered != end - start)
            return null;
        return Encoding.UTF8.GetString(bytes).TrimEnd('\0').Split('\0').ToList();
    }

    /// <summary>Podman's config.dump and the OCI spec.dump, as checkpointctl shows them.</summary>
    private List<(string Key, string Value)> Container()
    {
        var facts = new List<(string, string)>();
        string dir = _meta ?? _images;
        if (ReadJson(Path.Combine(dir, "config.dump")) is { } config)
        {
            foreach (var (key, label) in new[] { ("name", "name"), ("id", "id"), ("rootfsImageName", "image"), ("rootfsImageRef", "image id"),
                ("ociRuntime", "runtime"), ("createdTime", "created"), ("checkpointedTime", "checkpointed") })
                if (config.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.String && v.GetString() is { Length: > 0 } s)
                    facts.Add((label, s));
        }
        if (ReadJson(Path.Combine(dir, "spec.dump")) is { } spec)
        {
            if (spec.TryGetProperty("process", out var process) && process.TryGetProperty("args", out var args) && args.ValueKind == JsonValueKind.Array)
                facts.Add(("command", ArgvText(args.EnumerateArray().Select(a => a.GetString()).ToList())));
            if (spec.TryGetProperty("hostname", out var host) && host.ValueKind == JsonValueKind.String)
                facts.Add(("hostname", host.GetString()!));
            if (spec.TryGetProperty("annotations", out var notes) && notes.ValueKind == JsonValueKind.Object)
                foreach (var (key, label) in new[] { ("io.kubernetes.pod.name", "pod"), ("io.kubernetes.pod.namespace", "namespace"),
                    ("io.container.manager", "engine") })
                    if (notes.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.String)
                        facts.Add((label, v.GetString()!));
        }
        return facts;
    }

    private static JsonElement? ReadJson(string path)
    {
        if (!File.Exists(path))
            return null;
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(path));
            return doc.RootElement.ValueKind == JsonValueKind.Object ? doc.RootElement.Clone() : null;
        }
        catch (JsonException e)
        {
            throw new CrispException($"{path}: not JSON: {e.Message}");
        }
    }

    /// <summary>stats-dump's figures (the images dir, or an archive's top level where Podman puts it).</summary>
    private List<(string Key, ulong Value)>? Stats()
    {
        string? path = new[] { _meta, _images }.OfType<string>().Select(d => Path.Combine(d, "stats-dump")).FirstOrDefault(File.Exists);
        if (path is null || Crisp.Stats.StatsImage.Read(path).Dump is not { } d)
            return null;
        return
        [
            ("freezing_time_us", d.FreezingTime), ("frozen_time_us", d.FrozenTime), ("memdump_time_us", d.MemdumpTime),
            ("memwrite_time_us", d.MemwriteTime), ("pages_scanned", d.PagesScanned), ("pages_written", d.PagesWritten),
            ("shpages_written", d.ShpagesWritten),
        ];
    }

    /// <summary>The mount points of the checkpoint's mount namespace(s), when it has them (mountpoints-*.img), each as
    /// crit shows its entry; null when there are none.</summary>
    private List<string>? Mounts()
    {
        var files = Directory.EnumerateFiles(_images, "mountpoints-*.img").Order(StringComparer.Ordinal).ToList();
        if (files.Count == 0)
            return null;
        var list = new List<string>();
        foreach (var f in files)
        {
            try
            {
                list.Add($"{Path.GetFileName(f)}: {ImageJson.Render(f, pretty: false)}");
            }
            catch (CrispException e)
            {
                list.Add($"{Path.GetFileName(f)}: {e.Message}");
            }
        }
        return list;
    }
}
