using Crisp.Dump;
using Crisp.Images;
using Crisp.Linux.Proc;
using Crisp.Restore;
using Crisp.Security;
using Crisp.Security.Encryption;
using Crisp.Tests.Hardened;
using Crisp.Tests.Integration;
using Crisp.Tests.Support;
using Xunit.Abstractions;

namespace Crisp.Tests.Security;

/// <summary>Encryption at rest on real checkpoints: `dump --encrypt-key` writes every pages file encrypted,
/// `show` says so, a restore without the key or with another one is refused before anything exists, a tampered
/// chunk (manifest re-made, so only AES-GCM can notice) fails the restore in one line with every puppet gone,
/// and signed + encrypted checkpoints round-trip — the hardened workload included.</summary>
[Collection("Hardened")]
public class EncryptedCheckpointTests(ITestOutputHelper output)
{
    [RootFact]
    public void EncryptedSignedCheckpointRoundTripsAndEveryWrongKeyOrTamperedChunkIsRefused()
        => Live.WithStatecheck((dir, pid, pids) =>
        {
            var sign = SecurityCli.NewKey(dir.Path, "sign");
            string key = Path.Combine(dir.Path, "pages.key"), otherKey = Path.Combine(dir.Path, "other.key");
            File.WriteAllText(key, Convert.ToHexString(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32)));
            File.WriteAllText(otherKey, Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32)));
            var dump = CrispCli.Run("dump", "-t", pid.ToString(), "-D", dir.Images, "--encrypt-key", key, "--sign-key", sign.Private);
            Assert.True(dump.ExitCode == 0, $"dump: {dump.Stderr}");
            Live.WaitPidsFree(pids, pid);
            var pagesFiles = Directory.EnumerateFiles(dir.Images, "pages-*.img").ToList();
            var images = Directory.EnumerateFiles(dir.Images, "*.img").ToList();
            Assert.NotEmpty(pagesFiles);
            Assert.All(images, f => Assert.True(StoredFile.Probe(f).Encrypted, f));   // every image, not only the pages
            string id = ImageKey.Load(key).IdText;
            var show = CrispCli.Run("show", dir.Images, ImageKey.Option, key);
            Assert.True(show.ExitCode == 0, show.Stderr);
            Assert.Contains($"encryption: {images.Count} of {images.Count} images AES-256-GCM encrypted (key id {id})", show.Stdout);
            var noKey = CrispCli.Run("show", dir.Images);
            Assert.Equal(1, noKey.ExitCode);
            FailureSafetyTests.AssertOneLine(noKey.Stderr, $"inventory.img: encrypted (AES-256-GCM, key id {id}); pass {ImageKey.Option} KEY");
            var showPages = CrispCli.Run("show", pagesFiles[0]);
            Assert.Equal(1, showPages.ExitCode);
            FailureSafetyTests.AssertOneLine(showPages.Stderr, $"encrypted (AES-256-GCM, key id {id})");
            // The other readers decrypt with the key and name the file without it.
            string core = Directory.EnumerateFiles(dir.Images, "core-*.img").First();
            var showCore = CrispCli.Run("show", core, ImageKey.Option, key);
            Assert.True(showCore.ExitCode == 0, showCore.Stderr);
            Assert.Contains("\"magic\": \"CORE\"", showCore.Stdout);
            FailureSafetyTests.AssertOneLine(CrispCli.Run("show", core).Stderr, $"{Path.GetFileName(core)}: encrypted (AES-256-GCM, key id {id})");
            var decode = CrispCli.Run("decode", "-i", core, ImageKey.Option, key);
            Assert.True(decode.ExitCode == 0, decode.Stderr);
            var ps = CrispCli.Run("x", dir.Images, "ps", ImageKey.Option, key);
            Assert.True(ps.ExitCode == 0 && ps.Stdout.Contains(pid.ToString()), ps.Stderr + ps.Stdout);
            var inspect = CrispCli.Run("inspect", dir.Images, ImageKey.Option, key);
            Assert.True(inspect.ExitCode == 0 && inspect.Stdout.Contains($"[{pid}]"), inspect.Stderr + inspect.Stdout);

            string biggest = Path.GetFileName(pagesFiles.OrderByDescending(f => new FileInfo(f).Length).First());
            var cases = new (string Name, Action<string> Damage, string[] Args, string Expect)[]
            {
                ("no key", d => { }, [], $"encrypted (AES-256-GCM, key id {id}); pass {ImageKey.Option} KEY"),
                ("other key", d => { }, [ImageKey.Option, otherKey], $"encrypted with another key (key id {id}"),
                ("tampered chunk", d => TamperAndRemakeManifest(Path.Combine(d, biggest)), [ImageKey.Option, key], "fails authentication: changed since the dump"),
                ("tampered core", d => TamperAndRemakeManifest(Path.Combine(d, Path.GetFileName(core))), [ImageKey.Option, key], $"{Path.GetFileName(core)}: chunk 0 (data at 0.."),
            };
            foreach (var (name, damage, args, expect) in cases)
            {
                string copy = SecurityCli.Copy(dir.Images, Path.Combine(dir.Path, name.Replace(' ', '-')));
                damage(copy);
                var hashes = Live.Hashes(copy);
                var r = CrispCli.Run(["restore", "-d", "-D", copy, .. args]);
                output.WriteLine($"{name}: exit {r.ExitCode}: {r.Stderr.Trim()}");
                Assert.Equal(1, r.ExitCode);
                FailureSafetyTests.AssertOneLine(r.Stderr, expect);
                Assert.Equal(hashes, Live.Hashes(copy));
                Live.WaitPidsFree(pids);   // a puppet made before the bad chunk was met is killed; init reaps it
            }

            var ok = CrispCli.Run("restore", "-d", "-S", "-D", dir.Images, ImageKey.Option, key, CheckpointSignature.VerifyOption, sign.Public);
            Assert.True(ok.ExitCode == 0, $"restore: {ok.Stderr}");
            Live.SignalAndExpectPass(pid, dir.Path, () => Live.ReapWithin(pid).ExitCode);
        });

    /// <summary>The hardened probe (uid 1000, no capabilities, no_new_privs, two seccomp filters) dumped signed and
    /// encrypted, restored through the verify key and the pages key: same credentials and filters, counting on.</summary>
    [RootFact]
    public void HardenedProbeRoundTripsSignedAndEncrypted()
    {
        using var bench = new Bench();
        string counter = Path.Combine(bench.Work, "counter.txt");
        string probe = Support.Workloads.Build("seccomp_probe");
        int pid = bench.Start(Support.Workloads.Build("hardened", "-lseccomp"), ["hardened", "--strict", "--", probe, "--loop", counter]);
        Bench.WaitFor(() => Bench.Numbers(counter).Count >= 3 && ProcStatus.Read(pid).SeccompFilters == 2, "the probe to count");
        var before = Bench.Observe(pid);
        var keyDir = Directory.CreateTempSubdirectory("crisp-keys-").FullName;
        try
        {
            var sign = SecurityCli.NewKey(keyDir, "sign");
            string pagesKey = Path.Combine(keyDir, "pages.key");
            File.WriteAllBytes(pagesKey, System.Security.Cryptography.RandomNumberGenerator.GetBytes(32));

            new Dumper(new DumpOptions { RootPid = pid, ImagesDir = bench.Images, SignKey = sign.Private, EncryptKey = pagesKey }, Log.Null).Run();
            bench.WaitDumpedPidsFree(pid, ImageKey.Load(pagesKey));
            Assert.All(Directory.EnumerateFiles(bench.Images, "*.img"), f => Assert.True(StoredFile.Probe(f).Encrypted, f));
            long stoppedAt = Bench.Numbers(counter).Last();

            var tree = new Restorer(new RestoreOptions { ImagesDir = bench.Images, Detached = true, VerifyKey = sign.Public, EncryptKey = pagesKey }, Log.Null).Run();
            Assert.Equal(pid, tree.RootPid);
            bench.Track(pid);
            Bench.WaitFor(() => Bench.Numbers(counter).Last() >= stoppedAt + 3, "the restored probe to count on");
            Bench.Observe(pid).AssertSameAs(before);
            var verdict = Bench.Verdict(pid);
            Assert.True(verdict.Exited && verdict.ExitCode == 0, $"probe after restore: {verdict}; stderr: {bench.Stderr}");
            Bench.AssertContinuous(counter);
        }
        finally
        {
            Directory.Delete(keyDir, recursive: true);
        }
    }

    /// <summary>A byte of the pages' ciphertext changed, and the manifest re-made to match (an attacker without the signing key).</summary>
    private static void TamperAndRemakeManifest(string pages)
    {
        var bytes = File.ReadAllBytes(pages);
        bytes[48 + (bytes.Length - 48) / 2] ^= 0x01;
        File.WriteAllBytes(pages, bytes);
        ImageManifest.Write(ImageDirectory.Open(Path.GetDirectoryName(pages)!));
    }
}
