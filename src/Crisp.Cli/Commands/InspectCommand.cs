using System.Formats.Tar;
using System.IO.Compression;
using Crisp.Cli.CommandLine;
using Crisp.Images.Show;

namespace Crisp.Cli.Commands;

/// <summary>`crisp inspect DIR|ARCHIVE [--format tree|json]`, as `checkpointctl inspect`: an images directory, a
/// directory holding one as checkpoint/ (an unpacked Podman or Kubernetes checkpoint), or such a checkpoint archive
/// (tar, or tar.gz). From an archive only the metadata files and checkpoint/ are read out, into a private scratch
/// directory removed afterwards; the rootfs diff is never unpacked.</summary>
public static class InspectCommand
{
    private static readonly string[] MetaFiles = ["config.dump", "spec.dump", "stats-dump"];

    public static int Run(CommandContext ctx)
    {
        if (ctx.Operands.Count != 1)
            throw new UsageException("inspect needs one checkpoint: an images directory or a checkpoint archive");
        string format = ctx.Args.Get("format") ?? "tree";
        if (format is not ("tree" or "json"))
            throw new UsageException($"bad --format '{format}': tree or json");
        string source = ctx.Operands[0];
        if (Directory.Exists(source))
        {
            var (images, meta) = Locate(source);
            Write(ctx, new CheckpointInspector(images, meta, source) { Key = ctx.ReadKey(), ShowSecrets = ctx.Args.Has("show-secrets") }, format);
            return 0;
        }
        if (!File.Exists(source))
            throw new CrispException($"{source}: no such file or directory");
        string scratch = Directory.CreateTempSubdirectory("crisp-inspect-").FullName;   // 0700
        try
        {
            Unpack(source, scratch);
            var (images, meta) = Locate(scratch);
            Write(ctx, new CheckpointInspector(images, meta, source) { Key = ctx.ReadKey(), ShowSecrets = ctx.Args.Has("show-secrets") }, format);
        }
        finally
        {
            Directory.Delete(scratch, recursive: true);
        }
        return 0;
    }

    private static void Write(CommandContext ctx, CheckpointInspector inspector, string format)
    {
        ctx.Out.Write(format == "json" ? inspector.Json() : inspector.Text());
        ctx.Out.Flush();
    }

    /// <summary>The images directory and where the container's metadata is: DIR itself, or DIR/checkpoint.</summary>
    private static (string Images, string? Meta) Locate(string dir)
    {
        if (File.Exists(Path.Combine(dir, "pstree.img")))
            return (dir, null);
        string inner = Path.Combine(dir, "checkpoint");
        if (File.Exists(Path.Combine(inner, "pstree.img")))
            return (inner, dir);
        throw new CrispException($"{dir}: not a checkpoint (no pstree.img, nor checkpoint/pstree.img)");
    }

    private static void Unpack(string archive, string into)
    {
        using var file = File.OpenRead(archive);
        Span<byte> magic = stackalloc byte[4];
        int n = file.Read(magic);
        file.Position = 0;
        if (n >= 4 && magic.SequenceEqual(new byte[] { 0x28, 0xb5, 0x2f, 0xfd }))
            throw new CrispException($"{archive} is zstd-compressed: unpack it first (zstd -d) and inspect the .tar");
        Stream stream = n >= 2 && magic[0] == 0x1f && magic[1] == 0x8b ? new GZipStream(file, CompressionMode.Decompress) : file;
        Directory.CreateDirectory(Path.Combine(into, "checkpoint"));
        try
        {
            using var reader = new TarReader(stream);
            while (reader.GetNextEntry() is { } entry)
            {
                if (entry.EntryType is not (TarEntryType.RegularFile or TarEntryType.V7RegularFile))
                    continue;
                string name = entry.Name.StartsWith("./", StringComparison.Ordinal) ? entry.Name[2..] : entry.Name;
                string? target = MetaFiles.Contains(name) ? name
                    : name.StartsWith("checkpoint/", StringComparison.Ordinal) && name.Count(c => c == '/') == 1 && name.Length > 11 ? name
                    : null;
                if (target is not null && !target.Contains(".."))
                    entry.ExtractToFile(Path.Combine(into, target), overwrite: true);
            }
        }
        catch (InvalidDataException e)
        {
            throw new CrispException($"{archive}: not a checkpoint archive (tar or tar.gz): {e.Message}");
        }
    }
}
