using System.Security.Cryptography;
using Crisp.Images;
using Crisp.Security.Encryption;
using Crisp.Tests.Images;

namespace Crisp.Tests.Security;

/// <summary>The encrypted pages format on its own: what the pagemap writer stores comes back byte for byte
/// through any positioned read (chunk edges, empty and partial last chunks); a changed byte, a dropped last
/// chunk, another key or no key are each one line.</summary>
public class EncryptedPagesTests
{
    private const int Page = PagemapWriter.PageSize, Chunk = 1 << 20;

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(Chunk / Page)]
    [InlineData(Chunk / Page + 1)]
    [InlineData(3 * Chunk / Page + 7)]
    public void WhatIsWrittenReadsBackAtAnyOffset(int pages)
    {
        using var tmp = new TempImageDir();
        var key = ImageKey.FromBytes(RandomNumberGenerator.GetBytes(32));
        byte[] data = Write(tmp.Path, key, pages);
        string file = tmp.File("pages-1.img");
        Assert.True(StoredFile.Probe(file).Encrypted);
        Assert.Equal(48 + data.Length + 16 * Math.Max(1, (data.Length + Chunk - 1) / Chunk), new FileInfo(file).Length);
        using var map = ImageDirectory.Open(tmp.Path, key).OpenPagemap(1);
        Assert.Equal(pages, map.PresentPages);
        var rng = new Random(pages);
        for (int i = 0; i < 50 && data.Length > 0; i++)
        {
            int at = rng.Next(data.Length), len = rng.Next(1, Math.Min(data.Length - at, 3 * Chunk) + 1);
            var got = new byte[len];
            map.ReadStored(got, at);
            Assert.True(data.AsSpan(at, len).SequenceEqual(got), $"{len} bytes at {at}");
        }
        if (data.Length > 0)
        {
            var all = new byte[data.Length];
            map.ReadStored(all, 0);
            Assert.Equal(data, all);
            Assert.Equal(0, all.AsSpan().IndexOf("secret-"u8));   // every page starts with it in the clear...
        }
        Assert.Equal(-1, File.ReadAllBytes(file).AsSpan().IndexOf("secret-"u8));   // ...and it is nowhere in the file
    }

    [Fact]
    public void TamperingTruncationWrongKeyAndNoKeyAreOneLineEach()
    {
        using var tmp = new TempImageDir();
        var key = ImageKey.FromBytes(RandomNumberGenerator.GetBytes(32));
        Write(tmp.Path, key, 3 * Chunk / Page + 5);
        string file = tmp.File("pages-1.img");
        byte[] pristine = File.ReadAllBytes(file);

        var flipped = (byte[])pristine.Clone();
        flipped[48 + (Chunk + 16) + 100] ^= 1;   // a byte of chunk 1
        File.WriteAllBytes(file, flipped);
        var e = Assert.Throws<CrispException>(() => ReadAll(tmp.Path, key));
        Assert.Equal($"{file}: chunk 1 (data at {Chunk}..{2 * Chunk}) fails authentication: changed since the dump", e.Message);

        // Cut after chunk 2: the pagemap notices the missing pages; the file alone notices that chunk 2 was not sealed last.
        File.WriteAllBytes(file, pristine[..(48 + 3 * (Chunk + 16))]);
        Assert.Contains("holds 3145728 bytes but", Assert.Throws<ImageFormatException>(() => ReadAll(tmp.Path, key)).Message);
        using (var cut = StoredFile.Open(file, key))
            Assert.Contains("chunk 2 (data at", Assert.Throws<CrispException>(() => cut.ReadExactly(new byte[16], 2L * Chunk)).Message);

        File.WriteAllBytes(file, pristine);
        var other = ImageKey.FromBytes(RandomNumberGenerator.GetBytes(32));
        Assert.Contains($"encrypted with another key (key id {key.IdText}, not {other.IdText})",
            Assert.Throws<CrispException>(() => ReadAll(tmp.Path, other)).Message);
        Assert.Contains($"encrypted (AES-256-GCM); pass {ImageKey.Option} KEY",
            Assert.Throws<CrispException>(() => ReadAll(tmp.Path, null)).Message);
        Assert.Contains($"encrypted (AES-256-GCM, key id {key.IdText}); pass {ImageKey.Option}",
            Assert.Throws<CrispException>(() => EncryptedImages.CheckReadable(ImageDirectory.Open(tmp.Path))).Message);
        ReadAll(tmp.Path, key);
    }

    [Fact]
    public void KeyFilesAreRawHexOrBase64()
    {
        using var tmp = new TempImageDir();
        byte[] raw = RandomNumberGenerator.GetBytes(32);
        var expected = ImageKey.FromBytes(raw).IdText;
        File.WriteAllBytes(tmp.File("raw"), raw);
        File.WriteAllText(tmp.File("hex"), Convert.ToHexString(raw) + "\n");
        File.WriteAllText(tmp.File("b64"), Convert.ToBase64String(raw) + "\n");
        File.WriteAllText(tmp.File("short"), "abcd\n");
        foreach (var name in new[] { "raw", "hex", "b64" })
            Assert.Equal(expected, ImageKey.Load(tmp.File(name)).IdText);
        Assert.Contains("not a 32-byte key", Assert.Throws<CrispException>(() => ImageKey.Load(tmp.File("short"))).Message);
    }

    /// <summary>pagemap-1.img + pages-1.img of <paramref name="pages"/> pages, each starting with a marker; returns the plaintext.</summary>
    private static byte[] Write(string dir, ImageKey key, int pages)
    {
        var data = RandomNumberGenerator.GetBytes(pages * Page);
        for (int p = 0; p < pages; p++)
            "secret-"u8.CopyTo(data.AsSpan(p * Page));
        using (var w = ImageDirectory.Create(dir, null, key).CreatePagemap(1, 1))
        {
            // Uneven runs, as the dumper's batches are.
            int at = 0, run = 1;
            while (at < data.Length)
            {
                int len = Math.Min(run * Page, data.Length - at);
                w.AddPages(0x10000000UL + (ulong)at, data.AsSpan(at, len));
                at += len;
                run = run * 3 % 700 + 1;
            }
        }
        return data;
    }

    private static void ReadAll(string dir, ImageKey? key)
    {
        using var map = ImageDirectory.Open(dir, key).OpenPagemap(1);
        var all = new byte[map.PresentPages * Page];
        map.ReadStored(all, 0);
    }
}
