using Crisp.Cli.CommandLine;

namespace Crisp.Cli.Commands;

/// <summary>`crisp install [--as-criu] [--prefix DIR]` puts this native crisp into DIR/bin (default /usr/local) as
/// `crisp` and, with --as-criu, `criu` next to it (a symlink), so runc, Podman and scripts that run `criu` find
/// crisp. A `criu` already there is kept aside as criu.before-crisp. `--undo` takes back exactly what an install made
/// (recorded in DIR/lib/crisp/installed) and puts a kept-aside criu back.</summary>
public static class InstallCommand
{
    private const string Saved = "criu.before-crisp";

    public static int Run(CommandContext ctx)
    {
        string prefix = Path.GetFullPath(ctx.Args.Get("prefix") ?? "/usr/local");
        string bin = Path.Combine(prefix, "bin"), record = Path.Combine(prefix, "lib", "crisp", "installed");
        return ctx.Args.Has("undo") ? Undo(ctx, bin, record) : Install(ctx, bin, record, ctx.Args.Has("as-criu"));
    }

    private static int Install(CommandContext ctx, string bin, string record, bool asCriu)
    {
        string self = Environment.ProcessPath ?? throw new CrispException("can't find crisp's own executable");
        if (Path.GetFileName(self) is not ("crisp" or "criu"))
            throw new CrispException($"install copies the native crisp, and this is {self}: run it as ./crisp install (which builds it)");
        Directory.CreateDirectory(bin);
        var made = File.Exists(record) ? File.ReadAllLines(record).ToList() : [];
        string crisp = Path.Combine(bin, "crisp");
        if (!SameFile(self, crisp))
        {
            // Copied beside, then renamed over: a running crisp keeps its old file.
            string tmp = crisp + ".new";
            File.Copy(self, tmp, overwrite: true);
            File.SetUnixFileMode(tmp, (UnixFileMode)0b111_101_101);
            File.Move(tmp, crisp, overwrite: true);
        }
        Remember(made, crisp);
        ctx.Out.WriteLine($"installed {crisp}");
        if (asCriu)
        {
            string criu = Path.Combine(bin, "criu");
            var existing = new FileInfo(criu);
            if (existing.LinkTarget is "crisp")
                File.Delete(criu);
            else if (existing.Exists)
            {
                File.Move(criu, Path.Combine(bin, Saved), overwrite: false);
                ctx.Out.WriteLine($"kept the criu that was there as {Path.Combine(bin, Saved)}");
            }
            File.CreateSymbolicLink(criu, "crisp");
            Remember(made, criu);
            ctx.Out.WriteLine($"installed {criu} -> crisp");
            if (FirstOnPath("criu") is { } found && !SameFile(found, crisp))
                ctx.Out.WriteLine($"warning: `criu` on this PATH is {found}, which comes before {bin}: put {bin} first in PATH");
        }
        Directory.CreateDirectory(Path.GetDirectoryName(record)!);
        File.WriteAllLines(record, made);
        return 0;
    }

    private static int Undo(CommandContext ctx, string bin, string record)
    {
        if (!File.Exists(record))
            throw new CrispException($"nothing to undo: no crisp install recorded in {record}");
        foreach (string path in File.ReadAllLines(record).Where(p => p.Length > 0))
        {
            var file = new FileInfo(path);
            if (file.Exists || file.LinkTarget is not null)
            {
                file.Delete();
                ctx.Out.WriteLine($"removed {path}");
            }
        }
        string saved = Path.Combine(bin, Saved), criu = Path.Combine(bin, "criu");
        if (File.Exists(saved) && !File.Exists(criu))
        {
            File.Move(saved, criu);
            ctx.Out.WriteLine($"put the earlier {criu} back");
        }
        File.Delete(record);
        string dir = Path.GetDirectoryName(record)!;
        if (!Directory.EnumerateFileSystemEntries(dir).Any())
            Directory.Delete(dir);
        return 0;
    }

    private static void Remember(List<string> made, string path)
    {
        if (!made.Contains(path))
            made.Add(path);
    }

    /// <summary>The first <paramref name="name"/> on PATH, links resolved; null when none.</summary>
    private static string? FirstOnPath(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Select(d => Path.Combine(d, name)).FirstOrDefault(File.Exists);

    private static bool SameFile(string a, string b)
    {
        if (!File.Exists(a) || !File.Exists(b))
            return false;
        return Path.GetFullPath(Resolve(a)) == Path.GetFullPath(Resolve(b));
    }

    private static string Resolve(string path) =>
        File.ResolveLinkTarget(path, returnFinalTarget: true)?.FullName ?? path;
}
