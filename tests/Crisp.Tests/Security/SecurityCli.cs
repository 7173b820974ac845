using System.Security.Cryptography;
using Crisp.Tests.Integration;
using Crisp.Tests.Support;

namespace Crisp.Tests.Security;

/// <summary>What the security tests share: the CLI under a chosen umask, file modes and owners, ECDSA keys.</summary>
internal static class SecurityCli
{
    /// <summary>The crisp CLI started by a shell that set <paramref name="umask"/> first (the umask is per process:
    /// setting it in the test host would change it for every test running beside this one).</summary>
    public static CrispCli.Result RunWithUmask(string umask, params string[] args) =>
        CrispCli.RunProcess("/bin/sh", TimeSpan.FromSeconds(60), null,
            ["-c", $"umask {umask}; exec \"$0\" \"$@\"", CrispCli.Exe, .. args]);

    public static string Mode(string path) => "0" + Convert.ToString((int)File.GetUnixFileMode(path), 8);

    public static void Chown(string path, string owner)
    {
        var r = Live.RunProcess("/bin/chown", TimeSpan.FromSeconds(10), null, owner, path);
        Assert.True(r.ExitCode == 0, $"chown {owner} {path}: {r.Stderr}");
    }

    /// <summary>A fresh P-256 key pair as PEM files: (private key path, public key path, fingerprint).</summary>
    public static (string Private, string Public, string Fingerprint) NewKey(string dir, string name)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        string priv = Path.Combine(dir, name + ".pem"), pub = Path.Combine(dir, name + ".pub.pem");
        File.WriteAllText(priv, key.ExportPkcs8PrivateKeyPem());
        File.WriteAllText(pub, key.ExportSubjectPublicKeyInfoPem());
        string fp = "SHA256:" + Convert.ToBase64String(SHA256.HashData(key.ExportSubjectPublicKeyInfo())).TrimEnd('=');
        return (priv, pub, fp);
    }

    /// <summary>Copies a checkpoint into <paramref name="to"/> (a private directory, files keep their modes).</summary>
    public static string Copy(string from, string to)
    {
        Directory.CreateDirectory(to, (UnixFileMode)0x1C0);
        foreach (var f in Directory.EnumerateFiles(from))
            File.Copy(f, Path.Combine(to, Path.GetFileName(f)));
        return to;
    }
}
