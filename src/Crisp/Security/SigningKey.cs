using System.Security.Cryptography;

namespace Crisp.Security;

/// <summary>An ECDSA P-256 key read from a PEM file (.NET's own crypto; it has no stand-alone Ed25519).
/// A private key signs (dump --sign-key); a public key, or the public half of a private one, verifies
/// (restore --verify-key). Its fingerprint is SHA256: and the base64 of SHA-256 over the public key's
/// SubjectPublicKeyInfo DER, as ssh-keygen -l prints one.</summary>
public sealed class SigningKey : IDisposable
{
    public const string Algorithm = "ecdsa-p256-sha256";
    private const string P256Oid = "1.2.840.10045.3.1.7";

    private SigningKey(ECDsa key, string path)
    {
        Key = key;
        Path = path;
        PublicKeyDer = key.ExportSubjectPublicKeyInfo();
        Fingerprint = FingerprintOf(PublicKeyDer);
    }

    public ECDsa Key { get; }
    public string Path { get; }
    public byte[] PublicKeyDer { get; }
    public string Fingerprint { get; }

    public static string FingerprintOf(byte[] spkiDer) => "SHA256:" + Convert.ToBase64String(SHA256.HashData(spkiDer)).TrimEnd('=');

    /// <summary>A private key for signing (PKCS#8 or SEC1 "EC PRIVATE KEY" PEM).</summary>
    public static SigningKey LoadPrivate(string path)
    {
        var key = Load(path);
        try
        {
            key.Key.ExportParameters(includePrivateParameters: true);
            return key;
        }
        catch (CryptographicException)
        {
            key.Dispose();
            throw new CrispException($"{path}: a public key; signing needs the private key (PEM)");
        }
    }

    /// <summary>A key for verifying: a public key PEM, or a private one (only its public half is used).</summary>
    public static SigningKey LoadPublic(string path) => Load(path);

    /// <summary>A key from its SubjectPublicKeyInfo DER (as a signature file carries it).</summary>
    public static SigningKey FromPublicDer(byte[] der, string where)
    {
        var ecdsa = ECDsa.Create();
        try
        {
            ecdsa.ImportSubjectPublicKeyInfo(der, out _);
            return Checked(ecdsa, where);
        }
        catch (CryptographicException e)
        {
            ecdsa.Dispose();
            throw new CrispException($"{where}: not an ECDSA P-256 public key ({e.Message})");
        }
    }

    public byte[] Sign(ReadOnlySpan<byte> data) => Key.SignData(data, HashAlgorithmName.SHA256);

    public bool Verify(ReadOnlySpan<byte> data, ReadOnlySpan<byte> signature) => Key.VerifyData(data, signature, HashAlgorithmName.SHA256);

    public void Dispose() => Key.Dispose();

    private static SigningKey Load(string path)
    {
        string pem;
        try
        {
            pem = File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CrispException($"{path}: cannot read key: {e.Message}");
        }
        var ecdsa = ECDsa.Create();
        try
        {
            ecdsa.ImportFromPem(pem);
            return Checked(ecdsa, path);
        }
        catch (Exception e) when (e is ArgumentException or CryptographicException)
        {
            ecdsa.Dispose();
            string why = pem.Contains("ENCRYPTED", StringComparison.Ordinal) ? "a passphrase-protected key (crisp needs it unencrypted)"
                : "not an ECDSA P-256 key in PEM form (make one with: openssl ecparam -name prime256v1 -genkey -noout -out key.pem)";
            throw new CrispException($"{path}: {why}");
        }
    }

    private static SigningKey Checked(ECDsa ecdsa, string path)
    {
        var curve = ecdsa.ExportParameters(includePrivateParameters: false).Curve;
        if (curve.Oid?.Value != P256Oid && curve.Oid?.FriendlyName is not ("nistP256" or "ECDSA_P256"))
        {
            ecdsa.Dispose();
            throw new CrispException($"{path}: an EC key on {curve.Oid?.FriendlyName ?? "another curve"}; crisp signs with P-256 (prime256v1)");
        }
        return new SigningKey(ecdsa, path);
    }
}
