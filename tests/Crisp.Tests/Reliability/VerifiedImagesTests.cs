using Crisp.Dump;
using Crisp.Images;
using Crisp.Restore;
using Crisp.Tests.Integration;
using Crisp.Tests.Support;
using Xunit.Abstractions;

namespace Crisp.Tests.Reliability;

/// <summary>A dump writes crisp-manifest (XXH128 lines in xxhsum's tagged format) beside its images; restore and
/// `crisp show` refuse a changed, truncated, missing or added image with one line naming it, and
/// --skip-image-verify lets images without a manifest (CRIU's) through.</summary>
public class VerifiedImagesTests(ITestOutputHelper output)
{
    [RootFact]
    public void EveryDamageIsRefusedByNameAndTheSkipFlagRestoresUnverifiedImages()
        => Live.WithStatecheck((dir, pid, pids) =>
        {
            var state = TaskStateSnapshot.OfQuietTree(pid);
            new Dumper(new DumpOptions { RootPid = pid, ImagesDir = dir.Images }, Log.Null).Run();
            Live.WaitPidsFree(pids, pid);
            string manifest = Path.Combine(dir.Images, ImageManifest.FileName);
            Assert.True(File.Exists(manifest));
            // Every image listed, nothing else, each line naming its algorithm (xxhsum's tagged format); the hashes
            // agree with the library's XXH128 of each whole file (the pages were hashed as they were written).
            var lines = File.ReadAllLines(manifest);
            Assert.All(lines, l => Assert.Matches(@"^XXH128 \(.+\) = [0-9a-f]{32}$", l));
            var listed = lines.Select(l => l["XXH128 (".Length..l.LastIndexOf(") = ", StringComparison.Ordinal)]).ToList();
            Assert.Equal(Directory.EnumerateFiles(dir.Images, "*.img").Select(Path.GetFileName).Order(StringComparer.Ordinal), listed);
            foreach (var l in lines)
            {
                string file = Path.Combine(dir.Images, l["XXH128 (".Length..l.LastIndexOf(") = ", StringComparison.Ordinal)]);
                Assert.Equal(Convert.ToHexStringLower(System.IO.Hashing.XxHash128.Hash(File.ReadAllBytes(file))), l[^32..]);
            }
            // A manifest of older crisp (crisp-manifest.sha256, sha256sum's lines) still verifies.
            string legacy = Path.Combine(dir.Path, "legacy");
            CopyDir(dir.Images, legacy);
            File.Delete(Path.Combine(legacy, ImageManifest.FileName));
            var sum = Live.RunProcess("/bin/sh", TimeSpan.FromSeconds(30), null, "-c", $"cd '{legacy}' && sha256sum *.img > {ImageManifest.LegacyFileName}");
            Assert.True(sum.ExitCode == 0, sum.Stderr);
            Assert.Equal(listed.Count, ImageManifest.Verify(ImageDirectory.Open(legacy)));
            Live.AssertCritDecodesAll(dir.Images);
            Assert.Contains($"files match {ImageManifest.FileName}", CrispCli.Run("show", dir.Images).Stdout);

            string pages = Directory.EnumerateFiles(dir.Images, "pages-*.img").First();
            string core = Path.Combine(dir.Images, $"core-{pid}.img");
            string mm = Path.Combine(dir.Images, $"mm-{pid}.img");
            var damages = new (string Name, string Victim, Action<string> Damage, string Expect)[]
            {
                ("flipped byte", pages, p => { var b = File.ReadAllBytes(p); b[b.Length / 2] ^= 0x40; File.WriteAllBytes(p, b); }, "changed or truncated"),
                ("truncated", core, p => { using var f = File.OpenWrite(p); f.SetLength(f.Length - 1); }, "changed or truncated"),
                ("missing", mm, File.Delete, "missing"),
                ("added", Path.Combine(dir.Images, $"fs-{pid + 100000}.img"), p => File.Copy(Path.Combine(Path.GetDirectoryName(p)!, $"fs-{pid}.img"), p), "not part of the dump"),
                ("no manifest", manifest, File.Delete, ImageManifest.SkipFlag),
            };
            foreach (var (name, victim, damage, expect) in damages)
            {
                string copy = Path.Combine(dir.Path, name.Replace(' ', '-'));
                CopyDir(dir.Images, copy);
                string target = Path.Combine(copy, Path.GetFileName(victim));
                damage(target);
                var hashes = Live.Hashes(copy);
                var r = CrispCli.Run("restore", "-d", "-D", copy);
                output.WriteLine($"{name}: restore exit {r.ExitCode}: {r.Stderr.Trim()}");
                Assert.Equal(1, r.ExitCode);
                FailureSafetyTests.AssertOneLine(r.Stderr, expect);
                Assert.Contains(name == "no manifest" ? copy : target, r.Stderr);
                // A damaged pages file is found as its pages stream, once puppets exist: they are killed (init reaps
                // the orphans slowly here); every other damage is refused before anything is created.
                if (victim == pages)
                    Live.WaitPidsFree(pids);
                foreach (int p in pids)
                    Assert.False(Directory.Exists($"/proc/{p}"), $"{name}: PID {p} taken after a refused restore");
                Assert.Equal(hashes, Live.Hashes(copy));
                if (name != "no manifest")
                {
                    var s = CrispCli.Run("show", copy);
                    Assert.Equal(1, s.ExitCode);
                    FailureSafetyTests.AssertOneLine(s.Stderr, expect);
                    Assert.Equal("", s.Stdout);
                }
            }

            // Images without a manifest (as CRIU writes them) restore with the flag, and show says they are unverified.
            string unverified = Path.Combine(dir.Path, "no-manifest");
            Assert.Contains("not verified", CrispCli.Run("show", unverified).Stdout);
            var refused = Assert.Throws<ImageVerifyException>(() => new Restorer(new RestoreOptions { ImagesDir = unverified, Detached = true }, Log.Null).Run());
            Assert.Contains(ImageManifest.SkipFlag, refused.Message);
            var tree = new Restorer(new RestoreOptions { ImagesDir = unverified, Detached = true, SkipImageVerify = true }, Log.Null).Run();
            StateDiff.AssertRestored(state);
            Live.SignalAndExpectPass(tree.RootPid, dir.Path, () => Live.ExitCodeWithin(tree));
        });

    internal static void CopyDir(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var f in Directory.EnumerateFiles(from))
            File.Copy(f, Path.Combine(to, Path.GetFileName(f)));
    }
}
