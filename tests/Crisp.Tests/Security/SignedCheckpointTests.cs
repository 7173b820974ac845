using Crisp.Dump;
using Crisp.Images;
using Crisp.Restore;
using Crisp.Security;
using Crisp.Tests.Integration;
using Crisp.Tests.Support;
using Xunit.Abstractions;

namespace Crisp.Tests.Security;

/// <summary>Signed checkpoints: `dump --sign-key` signs the manifest; `restore --verify-key` refuses an unsigned
/// checkpoint, one signed by another key, and one whose image was replaced and manifest re-made (which the
/// SHA-256 manifest alone accepts), before anything is created; `show` says who signed.</summary>
public class SignedCheckpointTests(ITestOutputHelper output)
{
    [RootFact]
    public void VerifyKeyRefusesUnsignedForeignAndAlteredCheckpointsAndRestoresTheGenuineOne()
        => Live.WithStatecheck((dir, pid, pids) =>
        {
            var mine = SecurityCli.NewKey(dir.Path, "mine");
            var other = SecurityCli.NewKey(dir.Path, "other");
            var dump = CrispCli.Run("dump", "-t", pid.ToString(), "-D", dir.Images, "--sign-key", mine.Private);
            Assert.True(dump.ExitCode == 0, $"dump: {dump.Stderr}");
            Live.WaitPidsFree(pids, pid);
            string sig = Path.Combine(dir.Images, CheckpointSignature.FileName);
            Assert.Equal("0600", SecurityCli.Mode(sig));
            var show = CrispCli.Run("show", dir.Images);
            Assert.True(show.ExitCode == 0, show.Stderr);
            Assert.Contains($"signature: signed by key {mine.Fingerprint}", show.Stdout);
            // A signed manifest hashes with SHA-256 (a signature is only as strong as its hash), in the tagged lines
            // the stock tool checks.
            Assert.Contains("(SHA256)", show.Stdout);
            var sum = Live.RunProcess("/bin/sh", TimeSpan.FromSeconds(30), null, "-c", $"cd '{dir.Images}' && sha256sum --strict -c {ImageManifest.FileName}");
            Assert.True(sum.ExitCode == 0, $"sha256sum -c: {sum.Stdout}{sum.Stderr}");

            string pages = Directory.EnumerateFiles(dir.Images, "pages-*.img").Select(Path.GetFileName).First()!;
            var cases = new (string Name, Action<string> Damage, string Key, Func<string, string> Named, string Expect)[]
            {
                ("unsigned", d => File.Delete(Path.Combine(d, CheckpointSignature.FileName)), mine.Public, d => d, $"not signed (no {CheckpointSignature.FileName})"),
                ("other key", d => { }, other.Public, d => Path.Combine(d, CheckpointSignature.FileName), $"signed by key {mine.Fingerprint}, not by {other.Fingerprint}"),
                ("replaced image, re-made manifest", d => ReplaceAndRemakeManifest(d, pages), mine.Public,
                    d => Path.Combine(d, ImageManifest.FileName), "does not match its signature"),
                ("forged signature", d => ForgeSignature(d, other.Private), mine.Public,
                    d => Path.Combine(d, CheckpointSignature.FileName), $"signed by key {other.Fingerprint}, not by {mine.Fingerprint}"),
            };
            foreach (var (name, damage, key, named, expect) in cases)
            {
                string copy = SecurityCli.Copy(dir.Images, Path.Combine(dir.Path, name.Replace(' ', '-').Replace(",", "")));
                damage(copy);
                var hashes = Live.Hashes(copy);
                var r = CrispCli.Run("restore", "-d", "-D", copy, "--verify-key", key);
                output.WriteLine($"{name}: exit {r.ExitCode}: {r.Stderr.Trim()}");
                Assert.Equal(1, r.ExitCode);
                FailureSafetyTests.AssertOneLine(r.Stderr, $"{named(copy)}: {expect}");
                Assert.Equal(hashes, Live.Hashes(copy));
                foreach (int p in pids)
                    Assert.False(Directory.Exists($"/proc/{p}"), $"{name}: PID {p} taken after a refused restore");
            }
            // The re-made manifest fools the SHA-256 check alone: that is what the signature is for.
            string remade = Path.Combine(dir.Path, "replaced-image-re-made-manifest");
            Assert.Equal(Directory.EnumerateFiles(remade, "*.img").Count(), ImageManifest.Verify(ImageDirectory.Open(remade)));
            Assert.Contains("does NOT match the manifest", CrispCli.Run("show", remade).Stdout);

            // Unsigned checkpoints keep working without the flag; the genuine one restores with it.
            Assert.Contains("signature: not signed", CrispCli.Run("show", Path.Combine(dir.Path, "unsigned")).Stdout);
            var ok = CrispCli.Run("restore", "-d", "-S", "-D", dir.Images, "--verify-key", mine.Public);
            Assert.True(ok.ExitCode == 0, $"restore --verify-key: {ok.Stderr}");
            Live.SignalAndExpectPass(pid, dir.Path, () => Live.ReapWithin(pid).ExitCode);
        });

    [RootFact]
    public void BadKeysFailTheDumpInOneLineBeforeTheTreeIsTouched()
        => Live.WithStatecheck((dir, pid, pids) =>
        {
            var key = SecurityCli.NewKey(dir.Path, "k");
            string garbage = Path.Combine(dir.Path, "garbage.pem");
            File.WriteAllText(garbage, "not a key\n");
            foreach (var (file, expect) in new[] { (key.Public, "a public key; signing needs the private key"), (garbage, "not an ECDSA P-256 key in PEM form"),
                         (Path.Combine(dir.Path, "missing.pem"), "cannot read key") })
            {
                var r = CrispCli.Run("dump", "-t", pid.ToString(), "-D", dir.Images, "--sign-key", file);
                Assert.Equal(1, r.ExitCode);
                FailureSafetyTests.AssertOneLine(r.Stderr, $"{file}: {expect}");
                Assert.Equal("0", File.ReadAllLines($"/proc/{pid}/status").Single(l => l.StartsWith("TracerPid:", StringComparison.Ordinal)).Split('\t')[1]);
            }
            // A failed dump removes the directory it made (nothing was written).
            Assert.False(Directory.Exists(dir.Images) && Directory.EnumerateFiles(dir.Images, "*.img").Any());
            Directory.CreateDirectory(dir.Images);
            // --verify-key with --skip-image-verify contradicts itself.
            var both = CrispCli.Run("restore", "-d", "-D", dir.Images, "--verify-key", key.Public, "--skip-image-verify");
            Assert.Equal(1, both.ExitCode);
            FailureSafetyTests.AssertOneLine(both.Stderr, "contradict each other");
        });

    /// <summary>An attacker's edit: a changed page, and a manifest re-made to match it (sha256sum's format).</summary>
    private static void ReplaceAndRemakeManifest(string dir, string pages)
    {
        string path = Path.Combine(dir, pages);
        var bytes = File.ReadAllBytes(path);
        bytes[bytes.Length / 2] ^= 0x40;
        File.WriteAllBytes(path, bytes);
        var r = Live.RunProcess("/bin/sh", TimeSpan.FromSeconds(30), null, "-c", $"cd '{dir}' && sha256sum *.img > {ImageManifest.FileName}");
        Assert.True(r.ExitCode == 0, r.Stderr);
    }

    /// <summary>The attacker re-signs with a key of their own.</summary>
    private static void ForgeSignature(string dir, string attackerKey)
    {
        ReplaceAndRemakeManifest(dir, Directory.EnumerateFiles(dir, "pages-*.img").Select(Path.GetFileName).First()!);
        using var key = SigningKey.LoadPrivate(attackerKey);
        CheckpointSignature.Sign(ImageDirectory.Open(dir), key);
    }
}
