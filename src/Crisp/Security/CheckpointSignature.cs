using System.Text;
using Crisp.Images;

namespace Crisp.Security;

/// <summary>
/// crisp-manifest.sig: an ECDSA P-256/SHA-256 signature over crisp-manifest, whose SHA-256 lines (a signed dump
/// hashes with SHA-256, not XXH128) cover
/// every image, so one signature covers the checkpoint. Whoever changes an image must re-make the manifest,
/// and cannot re-make the signature without the private key. Text, one "name value" per line: format,
/// algorithm, the key's fingerprint, the public key (so `crisp show` can say who signed) and the signature.
/// The signed bytes are a fixed context line followed by the manifest, so the signature means nothing elsewhere.
/// </summary>
public static class CheckpointSignature
{
    public const string FileName = "crisp-manifest.sig";
    public const string SignOption = "--sign-key", VerifyOption = "--verify-key";
    private const string Format = "crisp-signature 1";
    private static readonly byte[] Context = "crisp checkpoint manifest v1\n"u8.ToArray();
    private const long MaxBytes = 16 << 10;

    /// <summary>What a signature file says, read and parsed; nothing checked yet.</summary>
    public sealed record Signed(string Algorithm, string Fingerprint, byte[] PublicKeyDer, byte[] Signature);

    /// <summary>Signs the directory's manifest (written just before) and writes the signature beside it.</summary>
    public static void Sign(ImageDirectory dir, SigningKey key)
    {
        byte[] manifest = dir.ReadRawBytes(ImageManifest.NameIn(dir));
        byte[] sig = key.Sign(SignedBytes(manifest));
        string text = $"{Format}\nalgorithm {SigningKey.Algorithm}\nkey {key.Fingerprint}\n" +
            $"public-key {Convert.ToBase64String(key.PublicKeyDer)}\nsignature {Convert.ToBase64String(sig)}\n";
        dir.WriteRawReplacing(FileName, Encoding.ASCII.GetBytes(text));
    }

    /// <summary>Removes a signature left by an earlier dump into the same directory.</summary>
    public static void Invalidate(ImageDirectory dir) => dir.Delete(FileName);

    public static bool Exists(ImageDirectory dir) => dir.Exists(FileName);

    /// <summary>Refuses, in one line, a checkpoint that is unsigned, signed by another key, or whose manifest
    /// does not match its signature; then checks every image against that same manifest (read once, so what
    /// was verified is what is checked). Returns the number of images checked.</summary>
    public static int Verify(ImageDirectory dir, SigningKey key, Images.Manifest.StreamedVerification? streamed = null)
    {
        string sigPath = dir.PathOf(FileName);
        if (!dir.Exists(FileName))
            throw new SignatureException(dir.Path, $"not signed (no {FileName}); {VerifyOption} accepts only checkpoints signed by {key.Fingerprint}");
        var signed = Read(dir);
        if (signed.Fingerprint != key.Fingerprint || !signed.PublicKeyDer.AsSpan().SequenceEqual(key.PublicKeyDer))
            throw new SignatureException(sigPath, $"signed by key {signed.Fingerprint}, not by {key.Fingerprint} ({key.Path})");
        string manifestName = ImageManifest.NameIn(dir), manifestPath = dir.PathOf(manifestName);
        if (!dir.Exists(manifestName))
            throw new SignatureException(manifestPath, "missing: the signature covers it");
        byte[] manifest = dir.ReadRawBytes(manifestName);
        if (!key.Verify(SignedBytes(manifest), signed.Signature))
            throw new SignatureException(manifestPath, $"does not match its signature by {key.Fingerprint}: the checkpoint was altered after it was signed");
        return ImageManifest.Verify(dir, Encoding.UTF8.GetString(manifest), streamed);
    }

    /// <summary>For `crisp show`: who signed, and whether the signature holds for the key it names (that says
    /// nothing about trust: only --verify-key with a key you trust does).</summary>
    public static string Describe(ImageDirectory dir)
    {
        if (!dir.Exists(FileName))
            return "not signed";
        var signed = Read(dir);
        using var key = SigningKey.FromPublicDer(signed.PublicKeyDer, dir.PathOf(FileName));
        string manifestName = ImageManifest.NameIn(dir);
        byte[] manifest = dir.Exists(manifestName) ? dir.ReadRawBytes(manifestName) : [];
        bool holds = key.Fingerprint == signed.Fingerprint && key.Verify(SignedBytes(manifest), signed.Signature);
        return holds ? $"signed by key {signed.Fingerprint} (ECDSA P-256; signature matches the manifest)"
            : $"signature by key {signed.Fingerprint} does NOT match the manifest (altered after signing)";
    }

    private static byte[] SignedBytes(byte[] manifest) => [.. Context, .. manifest];

    private static Signed Read(ImageDirectory dir)
    {
        string path = dir.PathOf(FileName);
        if (dir.LengthOf(FileName) > MaxBytes)
            throw new SignatureException(path, "too large to be a signature crisp wrote");
        var fields = new Dictionary<string, string>(StringComparer.Ordinal);
        string[] lines = Encoding.UTF8.GetString(dir.ReadRawBytes(FileName)).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        if (lines.Length == 0 || lines[0] != Format)
            throw new SignatureException(path, $"not a crisp signature (first line is not '{Format}')");
        foreach (string line in lines.Skip(1))
        {
            int sp = line.IndexOf(' ');
            if (sp <= 0 || !fields.TryAdd(line[..sp], line[(sp + 1)..]))
                throw new SignatureException(path, $"bad line '{line}'");
        }
        string Field(string name) => fields.TryGetValue(name, out var v) ? v : throw new SignatureException(path, $"no '{name}' line");
        if (Field("algorithm") != SigningKey.Algorithm)
            throw new SignatureException(path, $"algorithm '{Field("algorithm")}' is not {SigningKey.Algorithm}");
        try
        {
            return new Signed(Field("algorithm"), Field("key"), Convert.FromBase64String(Field("public-key")), Convert.FromBase64String(Field("signature")));
        }
        catch (FormatException)
        {
            throw new SignatureException(path, "public-key or signature is not base64");
        }
    }
}

/// <summary>A checkpoint refused by --verify-key: one line naming the file.</summary>
public sealed class SignatureException(string path, string problem) : CrispException($"{path}: {problem}")
{
    public string FilePath { get; } = path;
}
