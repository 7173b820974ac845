using System.Security.Cryptography;
using System.Text;

namespace Crisp.Security.Encryption;

/// <summary>The 32-byte key of --encrypt-key, read from a file holding it raw (exactly 32 bytes), as 64 hex
/// digits, or as base64 (`head -c32 /dev/urandom > key`, or `openssl rand -hex 32 > key`). Each image file gets
/// its own AES-256 key from it by HKDF-SHA256 with the file's random salt, so nonces never repeat under a key.
/// The key id (8 bytes of HMAC-SHA256 of a fixed label) tells a wrong key from a tampered file.</summary>
public sealed class ImageKey
{
    public const string Option = "--encrypt-key";
    private static readonly byte[] IdLabel = "crisp image key id"u8.ToArray();
    private static readonly byte[] FileKeyInfo = "crisp images v2"u8.ToArray();

    private readonly byte[] _key;

    private ImageKey(byte[] key)
    {
        _key = key;
        Id = HMACSHA256.HashData(key, IdLabel).AsSpan(0, 8).ToArray();
    }

    public byte[] Id { get; }
    public string IdText => Convert.ToHexStringLower(Id);

    public static ImageKey Load(string path)
    {
        byte[] raw;
        try
        {
            raw = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CrispException($"{path}: cannot read key: {e.Message}");
        }
        return new ImageKey(Decode(raw) ?? throw new CrispException(
            $"{path}: not a 32-byte key (expected 32 raw bytes, 64 hex digits or base64 of 32 bytes; make one with: head -c32 /dev/urandom > KEY)"));
    }

    public static ImageKey FromBytes(byte[] key) =>
        key.Length == 32 ? new ImageKey([.. key]) : throw new ArgumentException("an image key is 32 bytes", nameof(key));

    /// <summary>The AES-256 key of one file.</summary>
    internal byte[] FileKey(ReadOnlySpan<byte> salt)
    {
        var fileKey = new byte[32];
        HKDF.DeriveKey(HashAlgorithmName.SHA256, _key, fileKey, salt, FileKeyInfo);
        return fileKey;
    }

    private static byte[]? Decode(byte[] raw)
    {
        if (raw.Length == 32)
            return raw;
        string text;
        try
        {
            text = new UTF8Encoding(false, true).GetString(raw).Trim();
        }
        catch (DecoderFallbackException)
        {
            return null;
        }
        if (text.Length == 64 && text.All(Uri.IsHexDigit))
            return Convert.FromHexString(text);
        var buf = new byte[48];
        return Convert.TryFromBase64String(text, buf, out int n) && n == 32 ? buf[..32] : null;
    }
}
