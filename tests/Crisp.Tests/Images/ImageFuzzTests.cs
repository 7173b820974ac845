using System.Buffers.Binary;
using Crisp.Images;
using Crisp.Images.Show;
using Google.Protobuf;

namespace Crisp.Tests.Images;

/// <summary>
/// Bounded fuzzing of the image readers: sample images mutated at random (fixed seed). Every read
/// either succeeds or throws <see cref="ImageFormatException"/>: no other exception, no hang, no
/// allocation out of proportion to the file.
/// </summary>
public class ImageFuzzTests(Crisp.Tests.Cli.SleepDumpFixture dump) : IClassFixture<Crisp.Tests.Cli.SleepDumpFixture>
{
    private const int Cases = 300;
    private static readonly TimeSpan PerCase = TimeSpan.FromSeconds(10);

    private static List<(string Name, ImageKind Kind, byte[] Bytes)> Corpus(TempImageDir tmp)
    {
        foreach (var s in SampleImages.All())
            SampleImages.Write(tmp.Dir, s);
        using (var w = tmp.Dir.CreatePagemap(4242, 3))
        {
            w.AddPages(0x400000, new byte[2 * 4096]);
            w.AddRun(0x500000, 4, PagemapFlags.Lazy);
            w.AddPages(0x7ffd0000, new byte[4096]);
        }
        return tmp.Dir.List()
            .Where(f => f.File is { } img && !img.Kind.IsRaw)
            .Select(f => (f.FileName, f.File!.Value.Kind, File.ReadAllBytes(tmp.File(f.FileName))))
            .ToList();
    }

    /// <summary>Offsets of the entry-length words of a well-formed image.</summary>
    private static List<int> LengthOffsets(ImageKind kind, byte[] b)
    {
        var offsets = new List<int>();
        int pos = kind.HasCommonMagic ? 8 : 4;
        while (pos + 4 <= b.Length)
        {
            offsets.Add(pos);
            pos += 4 + (int)BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(pos));
            if (kind.Extra == ExtraPayload.PipeData)
                break; // extra payloads follow; the first length is enough
        }
        return offsets;
    }

    private static (string What, byte[] Bytes) Mutate(Random rng, ImageKind kind, byte[] src)
    {
        byte[] b = (byte[])src.Clone();
        switch (rng.Next(7))
        {
            case 0:
                int len = rng.Next(b.Length);
                return ($"truncate to {len}", b[..len]);
            case 1:
                int n = rng.Next(1, 9);
                for (int i = 0; i < n; i++)
                    b[rng.Next(b.Length)] ^= (byte)rng.Next(1, 256);
                return ($"flip {n} bytes", b);
            case 2:
            {
                var offs = LengthOffsets(kind, b);
                int at = offs.Count > 0 ? offs[rng.Next(offs.Count)] : 0;
                uint[] huge = [0xffffffff, 0x7fffffff, 0x80000000, (uint)b.Length + 1, (uint)rng.Next(), 0x10000000];
                uint v = huge[rng.Next(huge.Length)];
                if (at + 4 <= b.Length)
                    BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(at), v);
                return ($"length at {at} := 0x{v:x}", b);
            }
            case 3:
            {
                var r = new byte[rng.Next(0, 8192)];
                rng.NextBytes(r);
                return ($"random {r.Length} bytes", r);
            }
            case 4:
            {
                // Valid magics, random body.
                int head = kind.HasCommonMagic ? 8 : 4;
                var body = new byte[rng.Next(0, 2048)];
                rng.NextBytes(body);
                return ($"magics + random {body.Length} bytes", [.. b.AsSpan(0, head), .. body]);
            }
            case 5:
            {
                // A varint inside the payload turned into a huge length-delimited field length.
                int at = rng.Next(Math.Min(b.Length, 12), b.Length);
                byte[] big = [0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f];
                for (int i = 0; i < big.Length && at + i < b.Length; i++)
                    b[at + i] = big[i];
                return ($"huge field length at {at}", b);
            }
            default:
            {
                int at = rng.Next(b.Length);
                var ins = new byte[rng.Next(1, 64)];
                rng.NextBytes(ins);
                return ($"insert {ins.Length} bytes at {at}", [.. b.AsSpan(0, at), .. ins, .. b.AsSpan(at)]);
            }
        }
    }

    /// <summary>Everything `crisp show` and restore do with one image.</summary>
    private static void ReadEverything(ImageDirectory dir, string name, ImageKind kind)
    {
        string path = dir.PathOf(ImageKind.FromFileName(name)!.Value);
        using (var reader = ImageReader.Open(path, kind))
        {
            if (kind.Head is { } head)
                reader.Read(head);
            while (reader.Read(kind.Entry!) is { } e)
            {
                if (kind.Extra == ExtraPayload.PipeData)
                    reader.ReadExtra(((Crisp.Images.Proto.pipe_data_entry)e).Bytes);
            }
        }
        ImageJson.Render(path);
        if (kind == ImageKind.Pagemap || kind == ImageKind.ShmemPagemap)
        {
            using var map = dir.OpenPagemap(ImageKind.FromFileName(name)!.Value);
            foreach (var _ in map.Resolve(0, ulong.MaxValue)) { }
        }
    }

    [Fact]
    public async Task MutatedImagesGiveOnlyImageFormatExceptions()
    {
        using var tmp = new TempImageDir();
        var corpus = Corpus(tmp);
        Assert.True(corpus.Count >= 15);
        await Fuzz(corpus, 20240611);
    }

    /// <summary>The same on the images of a real dump of `sleep`.</summary>
    [Crisp.Tests.Support.RootFact]
    public async Task MutatedRealDumpImagesGiveOnlyImageFormatExceptions()
    {
        var corpus = Directory.EnumerateFiles(dump.Dir).Order(StringComparer.Ordinal)
            .Select(p => (Name: Path.GetFileName(p), File: ImageKind.FromFileName(p)))
            .Where(f => f.File is { } img && !img.Kind.IsRaw)
            .Select(f => (f.Name, f.File!.Value.Kind, File.ReadAllBytes(Path.Combine(dump.Dir, f.Name))))
            .ToList();
        Assert.True(corpus.Count >= 6);
        await Fuzz(corpus, 31337);
    }

    private static async Task Fuzz(List<(string Name, ImageKind Kind, byte[] Bytes)> corpus, int seed)
    {
        using var work = new TempImageDir();
        var rng = new Random(seed);
        var failures = new List<string>();
        // Each kind read once unmutated first: the first use of a message type builds its descriptors and JSON
        // formatter (megabytes, once per process), which is no cost of the file and, charged to whichever case
        // came first, failed the budget depending on test order and pid numbers in the names.
        foreach (var (name, kind, src) in corpus)
        {
            File.WriteAllBytes(work.File(name), src);
            try { ReadEverything(work.Dir, name, kind); }
            catch (ImageFormatException) { }
            File.Delete(work.File(name));
        }
        int ok = 0, rejected = 0;
        for (int i = 0; i < Cases; i++)
        {
            var (name, kind, src) = corpus[rng.Next(corpus.Count)];
            var (what, bytes) = Mutate(rng, kind, src);
            string path = work.File(name);
            File.WriteAllBytes(path, bytes);
            string label = $"case {i}: {name} {what}";
            var task = Task.Factory.StartNew(() =>
            {
                long before = GC.GetAllocatedBytesForCurrentThread();
                Exception? error = null;
                try
                {
                    ReadEverything(work.Dir, name, kind);
                }
                catch (Exception e)
                {
                    error = e;
                }
                return (error, GC.GetAllocatedBytesForCurrentThread() - before);
            }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
            Exception? err;
            long allocated;
            try
            {
                (err, allocated) = await task.WaitAsync(PerCase);
            }
            catch (TimeoutException)
            {
                failures.Add($"{label}: hung for more than {PerCase}");
                break; // the thread is stuck; stop rather than pile up more
            }
            // Fixed costs (a 64 KiB stream buffer per open, the JSON text) plus a multiple of the file.
            long budget = 1 << 20 | (64L * bytes.Length);
            if (allocated > budget + 64L * bytes.Length)
                failures.Add($"{label}: allocated {allocated} bytes for a {bytes.Length}-byte file");
            if (err is null)
                ok++;
            else if (err is ImageFormatException fe && fe.Message.Contains(path, StringComparison.Ordinal) && !fe.Message.Contains('\n'))
                rejected++;
            else
                failures.Add($"{label}: {err.GetType().Name}: {err.Message}");
            File.Delete(path);
        }
        Assert.True(failures.Count == 0, $"{failures.Count} bad outcomes:\n{string.Join('\n', failures.Take(20))}");
        Assert.True(rejected > Cases / 3, $"only {rejected} of {Cases} mutations were rejected ({ok} read fine)");
    }
}
