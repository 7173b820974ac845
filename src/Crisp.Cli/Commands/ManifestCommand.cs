using Crisp.Cli.CommandLine;
using Crisp.Images;

namespace Crisp.Cli.Commands;

/// <summary>`crisp manifest DIR` checks the images against crisp-manifest.sha256; `--update` rewrites it for the
/// images as they are now (after `crisp encode` changed one) and prints each file that changed.</summary>
public static class ManifestCommand
{
    public static int Run(CommandContext ctx)
    {
        if (ctx.Operands.Count != 1)
            throw new UsageException("manifest needs exactly one checkpoint directory");
        string path = ctx.Operands[0];
        if (!Directory.Exists(path))
            throw new CrispException($"{path}: no such directory");
        var dir = ImageDirectory.Open(path);
        if (!ctx.Args.Has("update"))
        {
            ctx.Out.WriteLine($"{ImageManifest.Verify(dir)} files match {ImageManifest.FileName}");
            return 0;
        }
        var changes = ImageManifest.Update(dir);
        foreach (var (name, change) in changes)
            ctx.Out.WriteLine($"{change}: {name}");
        ctx.Out.WriteLine(changes.Count == 0 ? $"{ImageManifest.FileName}: no image changed" : $"{ImageManifest.FileName} updated ({changes.Count} changed)");
        return 0;
    }
}
