using Crisp.Cli.CommandLine;
using Crisp.Images;
using Crisp.Images.Show;

namespace Crisp.Cli.Commands;

/// <summary>`crisp show FILE` prints one image as crit does; `crisp show DIR` summarises a checkpoint.</summary>
public static class ShowCommand
{
    public static int Run(CommandContext ctx)
    {
        if (ctx.Operands.Count != 1)
            throw new UsageException("show needs exactly one image file or directory");
        string path = ctx.Operands[0];
        ctx.Out.Write(Render(path, verify: !ctx.Args.Has("skip-image-verify"), ctx.ReadKey(), ctx.Args.Has("show-secrets")));
        ctx.Out.Flush();
        return 0;
    }

    /// <summary>The whole output, built before anything is printed, so an error leaves stdout empty.</summary>
    /// <param name="showSecrets">Print payloads (pipe, socket, queue, tty, deleted-file contents); otherwise each is
    /// a marker with its length.</param>
    public static string Render(string path, bool verify = true, Crisp.Security.Encryption.ImageKey? key = null, bool showSecrets = false)
    {
        if (Directory.Exists(path))
            return CheckpointSummary.Render(path, verify, key);
        if (!File.Exists(path))
            throw new ImageFormatException(path, 0, "no such file or directory");
        if (Path.GetFileName(path) is Crisp.Stats.StatsImage.DumpFile or Crisp.Stats.StatsImage.RestoreFile)
            return ImageJson.Render(ImageKind.Stats, [Crisp.Stats.StatsImage.Read(path)]);
        var file = ImageKind.FromFileName(path)
            ?? throw new ImageFormatException(path, 0, "not a known image file name (expected a CRIU image such as core-PID.img or inventory.img)");
        if (file.Kind == ImageKind.Pages && Crisp.Security.Encryption.StoredFile.Probe(path) is { Encrypted: true } enc)
            throw new ImageFormatException(path, 0, $"encrypted (AES-256-GCM, key id {enc.KeyId}): a raw image without entries; show its pagemap image for the layout");
        if (file.Kind.IsRaw)
            throw new ImageFormatException(path, 0, $"{file.Kind.Name} is a raw image without entries; show its pagemap image instead");
        // The name says what the file must be: check its magics against that first (crit goes by the
        // magic alone, so a core-1.img holding a pstree would otherwise print as PSTREE).
        if (verify)
            ImageManifest.VerifyFile(path);
        using (ImageReader.Open(path, file.Kind, key)) { }
        return ImageJson.Render(path, key, showSecrets);
    }
}
