using Crisp.Images;

namespace Crisp.Security.Encryption;

/// <summary>Checkpoint-wide views of encrypted images: refusing a restore that could not read them before
/// anything is created, and what `crisp show` says about them.</summary>
public static class EncryptedImages
{
    /// <summary>Throws one line naming the file when an image is encrypted and the directory has no key, or another
    /// key, or when a key is given and an image is plain (it could have been swapped in). Every image but the pages
    /// is authenticated whole here (they are small; the pages are checked chunk by chunk as the restore reads them),
    /// so a changed core, files or pipes-data image refuses the restore before any process exists.</summary>
    public static void CheckReadable(ImageDirectory dir)
    {
        foreach (var (name, file) in ImageFiles(dir))
        {
            if (dir.IsKeptChecked(name))
                continue;   // read whole by the manifest check: plain, and the bytes a restore parses
            using var stored = StoredFile.Open(dir.OpenRaw(name), dir.PathOf(name), dir.Key);
            if (stored is EncryptedFile enc)
            {
                if (dir.Key is null)
                    throw new CrispException($"{stored.Path}: encrypted (AES-256-GCM, key id {enc.KeyIdText}); pass {ImageKey.Option} KEY to restore it");
                if (file?.Kind != ImageKind.Pages)
                    enc.Authenticate();
            }
        }
    }

    /// <summary>One line for `crisp show DIR`: what is encrypted, and with which key id.</summary>
    public static string Describe(ImageDirectory dir)
    {
        var probes = ImageFiles(dir).Select(f => { using var h = dir.OpenRaw(f.Name); return StoredFile.Probe(h); }).ToList();
        var encrypted = probes.Where(p => p.Encrypted).ToList();
        if (encrypted.Count == 0)
            return "none (images stored in the clear)";
        string ids = string.Join(", ", encrypted.Select(p => p.KeyId).Distinct());
        return $"{encrypted.Count} of {probes.Count} images AES-256-GCM encrypted (key id {ids})";
    }

    /// <summary>Whether the directory's inventory is encrypted: its images need the key to be read at all.</summary>
    public static bool IsEncrypted(ImageDirectory dir)
    {
        if (!dir.Exists(ImageFile.Inventory))
            return false;
        using var h = dir.OpenRaw(ImageFile.Inventory.FileName);
        return StoredFile.Probe(h).Encrypted;
    }

    /// <summary>The image files crisp reads: *.img and CRIU's image names (not the manifest, signature or stats).</summary>
    private static IEnumerable<(string Name, ImageFile? File)> ImageFiles(ImageDirectory dir) =>
        dir.List().Where(f => f.FileName.EndsWith(".img", StringComparison.Ordinal) && (f.File is not null || f.FileName.StartsWith("pages-", StringComparison.Ordinal)));
}
