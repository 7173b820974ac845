using Crisp.Images;

namespace Crisp.Security.Encryption;

/// <summary>Checkpoint-wide views of encrypted pages: refusing a restore that could not read them before
/// anything is created, and what `crisp show` says about them.</summary>
public static class EncryptedPages
{
    /// <summary>Throws one line when a pages file is encrypted and the directory has no key, or another key
    /// (reads each file's 48-byte header, not its pages); also when a key is given for plain pages.</summary>
    public static void CheckReadable(ImageDirectory dir)
    {
        foreach (string path in PagesFiles(dir))
        {
            using var pages = dir.OpenPages(path);
            if (dir.PagesKey is null && pages is EncryptedPagesFile)
                throw new CrispException($"{path}: encrypted (AES-256-GCM, key id {PagesFile.Probe(path).KeyId}); pass {PagesKey.Option} KEY to restore it");
        }
    }

    /// <summary>One line for `crisp show DIR`: what is encrypted, and with which key id.</summary>
    public static string Describe(ImageDirectory dir)
    {
        var probes = PagesFiles(dir).Select(PagesFile.Probe).ToList();
        var encrypted = probes.Where(p => p.Encrypted).ToList();
        if (encrypted.Count == 0)
            return "none (pages stored in the clear)";
        string ids = string.Join(", ", encrypted.Select(p => p.KeyId).Distinct());
        return $"{encrypted.Count} of {probes.Count} pages files AES-256-GCM encrypted (key id {ids}); other images in the clear";
    }

    private static IEnumerable<string> PagesFiles(ImageDirectory dir) =>
        dir.List().Where(f => f.File is { } img && img.Kind == ImageKind.Pages).Select(f => dir.PathOf(f.File!.Value));
}
