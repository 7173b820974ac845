using System.Security.Cryptography;
using System.Text;

namespace Crisp.Images;

/// <summary>
/// The integrity manifest a dump writes beside its images: one <c>SHA256  name</c> line per image file,
/// in sha256sum's format (so <c>sha256sum -c crisp-manifest.sha256</c> checks a directory by hand). Its name
/// is no CRIU image name, so crit and CRIU ignore it. Written last: a dump that dies halfway leaves no
/// manifest, and restore refuses the half-written images.
/// </summary>
public static class ImageManifest
{
    public const string FileName = "crisp-manifest.sha256";
    public const string SkipFlag = "--skip-image-verify";
    private const long MaxManifestBytes = 4 << 20;

    /// <summary>Image files: known CRIU image names and anything else named *.img (logs and the like are not covered).</summary>
    public static bool IsImageName(string name) =>
        name.EndsWith(".img", StringComparison.Ordinal) || ImageKind.FromFileName(name) is not null;

    /// <summary>Removes a manifest left by an earlier dump into the same directory: it no longer describes it.</summary>
    public static void Invalidate(ImageDirectory dir) => File.Delete(Path.Combine(dir.Path, FileName));

    /// <summary>Hashes every image file in the directory and writes the manifest (atomically, by rename).</summary>
    public static int Write(ImageDirectory dir)
    {
        var sb = new StringBuilder();
        int count = 0;
        foreach (var name in ImageNames(dir))
        {
            sb.Append(Convert.ToHexStringLower(Hash(Path.Combine(dir.Path, name)))).Append("  ").Append(name).Append('\n');
            count++;
        }
        string path = Path.Combine(dir.Path, FileName), tmp = path + ".tmp";
        Security.PrivateFile.WriteAllBytes(tmp, Encoding.UTF8.GetBytes(sb.ToString()), dir.Modes.File);
        File.Move(tmp, path, overwrite: true);
        return count;
    }

    /// <summary>After an edit (crisp encode): rewrites the manifest for the images as they are now and returns what
    /// changed against the old one, by name: "changed", "added" or "removed" (all "added" when there was none).</summary>
    public static IReadOnlyList<(string Name, string Change)> Update(ImageDirectory dir)
    {
        if (!dir.Exists(ImageFile.Inventory))
            throw new ImageVerifyException(dir.Path, "not a checkpoint (inventory.img is missing)");
        string manifestPath = Path.Combine(dir.Path, FileName);
        var old = File.Exists(manifestPath) ? Parse(ReadText(manifestPath), manifestPath) : new Dictionary<string, byte[]>(StringComparer.Ordinal);
        var now = ImageNames(dir).ToDictionary(n => n, n => Hash(Path.Combine(dir.Path, n)), StringComparer.Ordinal);
        var changes = new List<(string, string)>();
        foreach (var name in old.Keys.Union(now.Keys).Order(StringComparer.Ordinal))
        {
            if (!now.TryGetValue(name, out var hash))
                changes.Add((name, "removed"));
            else if (!old.TryGetValue(name, out var before))
                changes.Add((name, "added"));
            else if (!CryptographicOperations.FixedTimeEquals(before, hash))
                changes.Add((name, "changed"));
        }
        Write(dir);
        return changes;
    }

    /// <summary>Whether the directory has a manifest at all (images from CRIU or older crisp have none).</summary>
    public static bool Exists(ImageDirectory dir) => File.Exists(Path.Combine(dir.Path, FileName));

    /// <summary>Checks every image against the manifest; throws a one-line <see cref="ImageVerifyException"/>
    /// naming the first file that is changed, truncated, missing or not listed. Returns the number of files checked.</summary>
    public static int Verify(ImageDirectory dir)
    {
        string manifestPath = Path.Combine(dir.Path, FileName);
        if (!File.Exists(manifestPath) && !dir.Exists(ImageFile.Inventory))
            throw new ImageVerifyException(dir.Path, "not a checkpoint (inventory.img is missing)");
        if (!File.Exists(manifestPath))
            throw new ImageVerifyException(dir.Path,
                $"no {FileName}: these images were not written by a crisp dump (or it did not finish); use {SkipFlag} to use them unverified");
        return Verify(dir, ReadText(manifestPath));
    }

    /// <summary>As <see cref="Verify(ImageDirectory)"/>, against manifest text already read (and checked against
    /// its signature): the lines verified are the lines used.</summary>
    public static int Verify(ImageDirectory dir, string manifestText)
    {
        string manifestPath = Path.Combine(dir.Path, FileName);
        var expected = Parse(manifestText, manifestPath);
        foreach (var (name, hash) in expected)
        {
            string path = Path.Combine(dir.Path, name);
            if (!File.Exists(path))
                throw new ImageVerifyException(path, $"missing (listed in {FileName})");
            if (!CryptographicOperations.FixedTimeEquals(Hash(path), hash))
                throw new ImageVerifyException(path, $"changed or truncated since the dump (SHA-256 differs from {FileName})");
        }
        foreach (var name in ImageNames(dir))
            if (!expected.ContainsKey(name))
                throw new ImageVerifyException(Path.Combine(dir.Path, name), $"not part of the dump (not in {FileName})");
        return expected.Count;
    }

    /// <summary>Checks one file against the manifest of its directory, when there is one that lists it.
    /// Returns false when there is nothing to check it against.</summary>
    public static bool VerifyFile(string path)
    {
        string manifestPath = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(path)) ?? "/", FileName);
        if (!File.Exists(manifestPath))
            return false;
        if (!Parse(ReadText(manifestPath), manifestPath).TryGetValue(Path.GetFileName(path), out var hash))
            return false;
        if (!CryptographicOperations.FixedTimeEquals(Hash(path), hash))
            throw new ImageVerifyException(path, $"changed or truncated since the dump (SHA-256 differs from {FileName})");
        return true;
    }

    private static IEnumerable<string> ImageNames(ImageDirectory dir) =>
        Directory.EnumerateFiles(dir.Path).Select(Path.GetFileName).OfType<string>()
            .Where(IsImageName).Order(StringComparer.Ordinal);

    private static byte[] Hash(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        return SHA256.HashData(stream);
    }

    /// <summary>Parses the manifest; names must be plain file names (nothing outside the directory is ever opened).</summary>
    private static string ReadText(string manifestPath)
    {
        if (new FileInfo(manifestPath).Length > MaxManifestBytes)
            throw new ImageVerifyException(manifestPath, $"larger than {MaxManifestBytes >> 20} MiB: not a manifest crisp wrote");
        return File.ReadAllText(manifestPath);
    }

    private static Dictionary<string, byte[]> Parse(string text, string manifestPath)
    {
        if (text.Length > MaxManifestBytes)
            throw new ImageVerifyException(manifestPath, $"larger than {MaxManifestBytes >> 20} MiB: not a manifest crisp wrote");
        var entries = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        int lineNo = 0;
        foreach (var line in text.Split('\n'))
        {
            lineNo++;
            if (line.Length == 0)
                continue;
            // sha256sum: 64 hex digits, a space, a mode char (' ' text or '*' binary), the name.
            byte[] hash = [];
            string name = "";
            if (line.Length > 66 && line[64] == ' ' && line[65] is (' ' or '*'))
            {
                name = line[66..];
                try { hash = Convert.FromHexString(line.AsSpan(0, 64)); }
                catch (FormatException) { }
            }
            if (hash.Length != 32 || !IsPlainName(name) || !entries.TryAdd(name, hash))
                throw new ImageVerifyException(manifestPath, $"line {lineNo} is not a '<sha256>  <image name>' line for a distinct image in this directory");
        }
        return entries;
    }

    private static bool IsPlainName(string name) =>
        name.Length is > 0 and <= 255 && name is not ("." or "..") && !name.Contains('/') && !name.Contains('\0') && IsImageName(name);
}

/// <summary>An image directory does not match its manifest (or has none). One line naming the file.</summary>
public sealed class ImageVerifyException(string path, string problem) : CrispException($"{path}: {problem}")
{
    public string FilePath { get; } = path;
}
