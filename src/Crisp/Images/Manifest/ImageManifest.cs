using System.Security.Cryptography;
using System.Text;
using Crisp.Images.Manifest;

namespace Crisp.Images;

/// <summary>
/// The integrity manifest a dump writes beside its images: one line per image file in the tagged format
/// sha256sum and xxhsum write and check (<c>XXH128 (pages-1.img) = hex</c>), so each line names its algorithm
/// (<see cref="ManifestHash"/>: XXH128, or SHA-256 for a signed checkpoint) and <c>xxhsum -c</c> /
/// <c>sha256sum -c</c> check a directory by hand. Manifests of older crisp (crisp-manifest.sha256, sha256sum's
/// untagged lines) still verify. Its name is no CRIU image name, so crit and CRIU ignore it. Written last: a dump
/// that dies halfway leaves no manifest, and restore refuses the half-written images. Pages are hashed as they
/// are written and, at restore, as they are read (<see cref="StreamedVerification"/>): no pass of its own over them.
/// </summary>
public static class ImageManifest
{
    public const string FileName = "crisp-manifest";
    /// <summary>The name older crisp wrote (SHA-256 only); read when a directory has no <see cref="FileName"/>.</summary>
    public const string LegacyFileName = "crisp-manifest.sha256";
    public const string SkipFlag = "--skip-image-verify";
    private const long MaxManifestBytes = 4 << 20;

    /// <summary>One manifest line: the algorithm it names and the hash.</summary>
    public readonly record struct Entry(ManifestHash Algorithm, byte[] Hash);

    /// <summary>Image files: known CRIU image names and anything else named *.img (logs and the like are not covered).</summary>
    public static bool IsImageName(string name) =>
        name.EndsWith(".img", StringComparison.Ordinal) || ImageKind.FromFileName(name) is not null;

    /// <summary>The manifest under either name.</summary>
    public static bool IsManifestName(string name) => name is FileName or LegacyFileName;

    /// <summary>The manifest of the directory: its own name, or the one older crisp wrote.</summary>
    public static string PathIn(ImageDirectory dir) => dir.PathOf(NameIn(dir));

    /// <summary>The manifest's file name in the directory (looked up through its handle).</summary>
    public static string NameIn(ImageDirectory dir) => !dir.Exists(FileName) && dir.Exists(LegacyFileName) ? LegacyFileName : FileName;

    /// <summary>Removes a manifest left by an earlier dump into the same directory: it no longer describes it.</summary>
    public static void Invalidate(ImageDirectory dir)
    {
        dir.Delete(FileName);
        dir.Delete(LegacyFileName);
    }

    /// <summary>Writes the manifest (atomically, by rename) with the directory's algorithm: files hashed as they
    /// were written (the pages) are not read again, the small rest is hashed here.</summary>
    public static int Write(ImageDirectory dir) => Write(dir, dir.ManifestHash);

    private static int Write(ImageDirectory dir, ManifestHash algorithm)
    {
        var sb = new StringBuilder();
        int count = 0;
        foreach (var name in ImageNames(dir))
        {
            byte[] hash = (ReferenceEquals(algorithm, dir.Written.Algorithm) ? dir.Written.Of(dir.PathOf(name)) : null) ?? dir.HashOf(name, algorithm);
            sb.Append(algorithm.Name).Append(" (").Append(name).Append(") = ").Append(Convert.ToHexStringLower(hash)).Append('\n');
            count++;
        }
        dir.WriteRawReplacing(FileName, Encoding.UTF8.GetBytes(sb.ToString()));
        dir.Delete(LegacyFileName);
        return count;
    }

    /// <summary>After an edit (crisp encode): rewrites the manifest for the images as they are now and returns what
    /// changed against the old one, by name: "changed", "added" or "removed" (all "added" when there was none).
    /// The old manifest's algorithm is kept.</summary>
    public static IReadOnlyList<(string Name, string Change)> Update(ImageDirectory dir)
    {
        if (!dir.Exists(ImageFile.Inventory))
            throw new ImageVerifyException(dir.Path, "not a checkpoint (inventory.img is missing)");
        string manifestName = NameIn(dir);
        var old = dir.Exists(manifestName) ? Parse(ReadText(dir, manifestName), dir.PathOf(manifestName)) : new Dictionary<string, Entry>(StringComparer.Ordinal);
        var algorithm = old.Values.Select(e => e.Algorithm).FirstOrDefault() ?? dir.ManifestHash;
        var changes = new List<(string, string)>();
        var now = ImageNames(dir).ToHashSet(StringComparer.Ordinal);
        foreach (var name in old.Keys.Union(now).Order(StringComparer.Ordinal))
        {
            if (!now.Contains(name))
                changes.Add((name, "removed"));
            else if (!old.TryGetValue(name, out var before))
                changes.Add((name, "added"));
            else if (!CryptographicOperations.FixedTimeEquals(before.Hash, dir.HashOf(name, before.Algorithm)))
                changes.Add((name, "changed"));
        }
        Write(dir, algorithm);
        return changes;
    }

    /// <summary>Whether the directory has a manifest at all (images from CRIU or older crisp have none).</summary>
    public static bool Exists(ImageDirectory dir) => dir.Exists(NameIn(dir));

    /// <summary>The algorithms the manifest names (for `crisp show`).</summary>
    public static string Algorithms(ImageDirectory dir) =>
        string.Join("+", Parse(ReadText(dir, NameIn(dir)), PathIn(dir)).Values.Select(e => e.Algorithm.Name).Distinct().Order(StringComparer.Ordinal));

    /// <summary>Checks every image against the manifest; throws a one-line <see cref="ImageVerifyException"/>
    /// naming the first file that is changed, truncated, missing or not listed. Returns the number of files checked.
    /// With <paramref name="streamed"/>, the pages files are only registered there, to be checked as a restore
    /// reads them (every other file is checked here).</summary>
    public static int Verify(ImageDirectory dir, StreamedVerification? streamed = null)
    {
        string manifestName = NameIn(dir);
        if (!dir.Exists(manifestName) && !dir.Exists(ImageFile.Inventory))
            throw new ImageVerifyException(dir.Path, "not a checkpoint (inventory.img is missing)");
        if (!dir.Exists(manifestName))
            throw new ImageVerifyException(dir.Path,
                $"no {FileName}: these images were not written by a crisp dump (or it did not finish); use {SkipFlag} to use them unverified");
        return Verify(dir, ReadText(dir, manifestName), streamed);
    }

    /// <summary>As <see cref="Verify(ImageDirectory, StreamedVerification?)"/>, against manifest text already read
    /// (and checked against its signature): the lines verified are the lines used.</summary>
    public static int Verify(ImageDirectory dir, string manifestText, StreamedVerification? streamed = null)
    {
        string manifestName = NameIn(dir);
        var expected = Parse(manifestText, dir.PathOf(manifestName));
        dir.ForgetAllChecked();
        foreach (var (name, entry) in expected)
        {
            if (!dir.Exists(name))
                throw new ImageVerifyException(dir.PathOf(name), $"missing (listed in {manifestName})");
            CheckOrExpect(dir, name, entry, manifestName, streamed);
        }
        foreach (var name in ImageNames(dir))
            if (!expected.ContainsKey(name))
                throw new ImageVerifyException(dir.PathOf(name), $"not part of the dump (not in {manifestName})");
        return expected.Count;
    }

    /// <summary>Checks one file (`crisp show FILE`) against the manifest of its directory, when there is one that
    /// lists it. Returns false when there is nothing to check it against.</summary>
    public static bool VerifyFile(string path)
    {
        string full = Path.GetFullPath(path);
        using var dir = ImageDirectory.Open(Path.GetDirectoryName(full) ?? "/");
        return VerifyFile(dir, Path.GetFileName(full));
    }

    /// <summary>Checks file <paramref name="name"/> of <paramref name="dir"/> against the directory's manifest, when
    /// there is one that lists it; a pages file is left to <paramref name="streamed"/>. False: nothing to check.</summary>
    public static bool VerifyFile(ImageDirectory dir, string name, StreamedVerification? streamed = null)
    {
        string manifestName = NameIn(dir);
        if (!dir.Exists(manifestName))
            return false;
        if (!Parse(ReadText(dir, manifestName), dir.PathOf(manifestName)).TryGetValue(name, out var entry))
            return false;
        CheckOrExpect(dir, name, entry, manifestName, streamed);
        return true;
    }

    /// <summary>A pages file's check is left to the restore's stream when there is one; any other file is hashed now.</summary>
    private static void CheckOrExpect(ImageDirectory dir, string name, Entry entry, string manifestName, StreamedVerification? streamed)
    {
        if (streamed is not null && ImageKind.FromFileName(name) is { Kind: var kind } && kind == ImageKind.Pages)
            streamed.Expect(dir.PathOf(name), entry, manifestName);
        else if (!CryptographicOperations.FixedTimeEquals(dir.HashKeeping(name, entry.Algorithm), entry.Hash))
        {
            dir.ForgetChecked(name);
            throw Mismatch(dir.PathOf(name), entry.Algorithm, manifestName);
        }
    }

    internal static ImageVerifyException Mismatch(string path, ManifestHash algorithm, string manifestName) =>
        new(path, $"changed or truncated since the dump ({algorithm.Name} differs from {manifestName})");

    private static IEnumerable<string> ImageNames(ImageDirectory dir) =>
        dir.FileNames().Where(IsImageName).Order(StringComparer.Ordinal);

    private static string ReadText(ImageDirectory dir, string manifestName)
    {
        if (dir.LengthOf(manifestName) > MaxManifestBytes)
            throw new ImageVerifyException(dir.PathOf(manifestName), $"larger than {MaxManifestBytes >> 20} MiB: not a manifest crisp wrote");
        return Encoding.UTF8.GetString(dir.ReadRawBytes(manifestName));
    }

    /// <summary>Parses the manifest; names must be plain file names (nothing outside the directory is ever opened).</summary>
    private static Dictionary<string, Entry> Parse(string text, string manifestPath)
    {
        if (text.Length > MaxManifestBytes)
            throw new ImageVerifyException(manifestPath, $"larger than {MaxManifestBytes >> 20} MiB: not a manifest crisp wrote");
        var entries = new Dictionary<string, Entry>(StringComparer.Ordinal);
        int lineNo = 0;
        foreach (var line in text.Split('\n'))
        {
            lineNo++;
            if (line.Length == 0)
                continue;
            var (name, entry) = ParseLine(line);
            if (entry is not { } e || !IsPlainName(name) || !entries.TryAdd(name, e))
                throw new ImageVerifyException(manifestPath, $"line {lineNo} is not a '<ALGORITHM> (<image name>) = <hash>' or '<sha256>  <image name>' line for a distinct image in this directory");
        }
        return entries;
    }

    /// <summary>Tagged ("XXH128 (name) = hex", the algorithm named) or untagged ("hex  name" or "hex *name", as
    /// sha256sum and xxh128sum write: the algorithm told by the hash's length).</summary>
    private static (string Name, Entry? Entry) ParseLine(string line)
    {
        int open = line.IndexOf(" (", StringComparison.Ordinal), close = line.LastIndexOf(") = ", StringComparison.Ordinal);
        if (open > 0 && close > open && ManifestHash.FromName(line[..open]) is { } tagged)
            return (line[(open + 2)..close], Hex(line[(close + 4)..]) is { } h && h.Length == tagged.Size ? new Entry(tagged, h) : null);
        int sp = line.IndexOf(' ');
        if (sp > 0 && line.Length > sp + 2 && line[sp + 1] is ' ' or '*' && Hex(line[..sp]) is { } hash && ManifestHash.FromSize(hash.Length) is { } bySize)
            return (line[(sp + 2)..], new Entry(bySize, hash));
        return ("", null);
    }

    private static byte[]? Hex(string digits)
    {
        try { return Convert.FromHexString(digits); }
        catch (FormatException) { return null; }
    }

    private static bool IsPlainName(string name) =>
        name.Length is > 0 and <= 255 && name is not ("." or "..") && !name.Contains('/') && !name.Contains('\0') && IsImageName(name);
}

/// <summary>An image directory does not match its manifest (or has none). One line naming the file.</summary>
public sealed class ImageVerifyException(string path, string problem) : CrispException($"{path}: {problem}")
{
    public string FilePath { get; } = path;
}
