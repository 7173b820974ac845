using System.Buffers.Binary;
using System.Diagnostics;
using Crisp.Dump;
using Crisp.Images;
using Crisp.Linux;
using Crisp.Restore;
using Crisp.Tests.Integration;
using Crisp.Tests.Support;
using Xunit.Abstractions;

namespace Crisp.Tests.Reliability;

/// <summary>The issue's done-when: 200 images of a real dump (a shell with a two-process pipeline) mutated at
/// random — truncated, bytes flipped, length words made huge, replaced by random bytes or by another image,
/// deleted. The manifest refuses every one; with verification skipped the readers and restore stages must
/// refuse each with one line (or, where the damage is harmless, restore), never hang, never throw an
/// internal error, leave no process behind and leave the image directory byte-identical.</summary>
[Collection("compel")]
public class HostileImageTests(ITestOutputHelper output)
{
    private const int Cases = 200, CliCases = 4, Seed = 9009;
    private static readonly TimeSpan PerCase = TimeSpan.FromSeconds(30);

    [RootFact]
    public async Task MutatedImagesAreRefusedWithOneLineAndLeaveNothingBehind()
    {
        using var dir = new Live.TempDir();
        int pid = Live.StartQuiet("/bin/sh", ["sh", "-c", "sleep 1000 | cat; true"]);
        List<int> pids = [pid];
        try
        {
            Live.WaitFor(() => File.ReadAllText($"/proc/{pid}/task/{pid}/children").Trim().Split(' ').Length == 2
                && File.ReadAllText($"/proc/{pid}/task/{pid}/children").Trim().Split(' ').All(c => File.ReadAllText($"/proc/{c}/comm").Trim() is "sleep" or "cat"),
                "the pipeline");
            new Dumper(new DumpOptions { RootPid = pid, ImagesDir = dir.Images }, Log.Null).Run();
            pids = Live.CheckpointPids(dir.Images);
            Live.WaitPidsFree(pids, pid);
            var pristine = Directory.EnumerateFiles(dir.Images).ToDictionary(f => Path.GetFileName(f)!, File.ReadAllBytes);
            string work = Path.Combine(dir.Path, "work");
            VerifiedImagesTests.CopyDir(dir.Images, work);
            var images = ImageDirectory.Open(work);
            var names = pristine.Keys.Where(ImageManifest.IsImageName).Order(StringComparer.Ordinal).ToArray();

            var rng = new Random(Seed);
            var failures = new List<string>();
            var outcomes = new Dictionary<string, int>();
            var clock = Stopwatch.StartNew();
            for (int i = 0; i < Cases; i++)
            {
                string name = names[rng.Next(names.Length)];
                string what = Mutate(rng, work, name, names, pristine);
                string label = $"case {i}: {name}: {what}";
                var hashes = Live.Hashes(work);
                var caseClock = Stopwatch.StartNew();

                // Verified (the default): always refused, naming a file.
                try
                {
                    ImageManifest.Verify(images);
                    failures.Add($"{label}: the manifest accepted it");
                }
                catch (ImageVerifyException) { }

                // Unverified: the readers and stages themselves.
                string outcome;
                if (i < CliCases)
                {
                    var r = CrispCli.Run("restore", "-d", "--skip-image-verify", "-D", work);
                    var lines = r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
                    outcome = r.ExitCode == 0 ? "restored" : lines.Length == 1 && !lines[0].Contains("internal error") ? "refused" : $"bad CLI error: {r.Stderr}";
                    if (r.ExitCode == 0)
                        Live.KillAll(pids);
                }
                else
                {
                    outcome = await RestoreInProcess(work, pids);
                }
                outcomes[outcome.StartsWith("refused") || outcome == "restored" ? outcome : "bad"] = outcomes.GetValueOrDefault(outcome) + 1;
                if (outcome != "refused" && outcome != "restored")
                    failures.Add($"{label}: {outcome}");
                else
                    output.WriteLine($"{label}: {outcome} ({caseClock.ElapsedMilliseconds} ms)");
                if (outcome.StartsWith("hung"))
                    break;
                try { Live.WaitPidsFree(pids); }
                catch (TimeoutException) { failures.Add($"{label}: PIDs {string.Join(',', pids.Where(p => Directory.Exists($"/proc/{p}")))} left behind"); Live.KillAll(pids); }
                // A restore that succeeds writes stats-restore into the work dir (the images dir, as CRIU does).
                File.Delete(Path.Combine(work, "stats-restore"));
                if (!hashes.SequenceEqual(Live.Hashes(work)))
                    failures.Add($"{label}: the image directory changed");
                // Undo the mutation.
                foreach (var f in Directory.EnumerateFiles(work))
                    if (!pristine.ContainsKey(Path.GetFileName(f)))
                        File.Delete(f);
                foreach (var (n, bytes) in pristine)
                    File.WriteAllBytes(Path.Combine(work, n), bytes);
            }
            output.WriteLine($"{Cases} mutations ({CliCases} through the CLI) in {clock.Elapsed.TotalSeconds:F1} s: " +
                string.Join(", ", outcomes.Select(o => $"{o.Key} {o.Value}")));
            Assert.True(failures.Count == 0, $"{failures.Count} bad outcomes:\n{string.Join('\n', failures.Take(30))}");
            Assert.True(outcomes.GetValueOrDefault("refused") > Cases / 2, "too few mutations were refused to exercise the readers");
        }
        finally
        {
            Live.KillAll(pids, pid);
        }
    }

    /// <summary>One restore with verification skipped: "refused" (one-line error of a kind the CLI reports as
    /// such), "restored" (then killed), or what went wrong.</summary>
    private static async Task<string> RestoreInProcess(string images, List<int> pids)
    {
        var task = Task.Factory.StartNew(() =>
        {
            try
            {
                var tree = new Restorer(new RestoreOptions { ImagesDir = images, Detached = true, SkipImageVerify = true }, Log.Null).Run();
                Live.KillAll(pids, tree.RootPid);
                return "restored";
            }
            catch (Exception e) when (e is CrispException or SyscallException or IOException or UnauthorizedAccessException)
            {
                return e.Message.Contains('\n') ? $"error of several lines: {e.Message}" : "refused";
            }
            catch (Exception e)
            {
                return $"internal error {e.GetType().Name}: {e.Message}\n{e.StackTrace}";
            }
        }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        try
        {
            return await task.WaitAsync(PerCase);
        }
        catch (TimeoutException)
        {
            return $"hung for more than {PerCase}";
        }
    }

    /// <summary>Damages the work copy of <paramref name="name"/> (always into different bytes or no file).</summary>
    private static string Mutate(Random rng, string dir, string name, string[] names, Dictionary<string, byte[]> pristine)
    {
        string path = Path.Combine(dir, name);
        byte[] b = (byte[])pristine[name].Clone();
        bool raw = name.StartsWith("pages-", StringComparison.Ordinal);
        int kind = rng.Next(raw ? 2 : 7);
        switch (kind)
        {
            case 0:
                int len = rng.Next(Math.Max(b.Length, 1));
                File.WriteAllBytes(path, b[..len]);
                return $"truncated to {len} of {b.Length}";
            case 1:
                File.Delete(path);
                return "deleted";
            case 2:
            {
                int n = rng.Next(1, 9);
                for (int k = 0; k < n; k++)
                    b[rng.Next(b.Length)] ^= (byte)rng.Next(1, 256);
                File.WriteAllBytes(path, b);
                return $"{n} bytes flipped";
            }
            case 3:
            {
                // A length word (entry or varint) made huge.
                int at = rng.Next(0, Math.Max(1, b.Length - 4));
                uint[] huge = [0xffffffff, 0x7fffffff, 0x80000000, 0x10000000, (uint)rng.Next()];
                uint v = huge[rng.Next(huge.Length)];
                if (rng.Next(2) == 0 && b.Length >= 12)
                    at = name == "inventory.img" ? 4 : 8;   // the first entry's length
                BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(at), v);
                if (b.AsSpan().SequenceEqual(pristine[name]))
                    b[at] ^= 1;   // the word already held that value: a mutation must change the file
                File.WriteAllBytes(path, b);
                return $"u32 at {at} := 0x{v:x}";
            }
            case 4:
            {
                var r = new byte[rng.Next(1, 4096)];
                rng.NextBytes(r);
                File.WriteAllBytes(path, r);
                return $"replaced by {r.Length} random bytes";
            }
            case 5:
            {
                string other = names.Where(n => n != name).ElementAt(rng.Next(names.Length - 1));
                File.WriteAllBytes(path, pristine[other]);
                return $"replaced by {other}";
            }
            default:
            {
                // Valid magics, then the entry's payload with random bytes overwritten.
                int head = name == "inventory.img" ? 8 : 12;
                for (int k = head; k < b.Length; k++)
                    if (rng.Next(8) == 0)
                        b[k] = (byte)rng.Next(256);
                if (b.AsSpan().SequenceEqual(pristine[name]) && b.Length > 0)
                    b[^1] ^= 1;
                File.WriteAllBytes(path, b);
                return "payload scrambled";
            }
        }
    }
}
