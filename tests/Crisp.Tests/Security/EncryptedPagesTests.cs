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
    [InlineData(6 * Chunk / Page)]
    [InlineData(9 * Chunk / Page + 3)]
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
        Assert.Contains($"pagemap-1.img: encrypted (AES-256-GCM, key id {key.IdText}); pass {ImageKey.Option} KEY",
            Assert.Throws<CrispException>(() => ReadAll(tmp.Path, null)).Message);
        Assert.Contains($"encrypted (AES-256-GCM, key id {key.IdText}); pass {ImageKey.Option}",
            Assert.Throws<CrispException>(() => EncryptedImages.CheckReadable(ImageDirectory.Open(tmp.Path))).Message);
        ReadAll(tmp.Path, key);
    }

    [Fact]
    public void ReadAheadFailuresReachTheReaderAtTheirChunk()
    {
        using var tmp = new TempImageDir();
        var key = ImageKey.FromBytes(RandomNumberGenerator.GetBytes(32));
        byte[] data = Write(tmp.Path, key, 10 * Chunk / Page);
        string file = tmp.File("pages-1.img");
        byte[] pristine = File.ReadAllBytes(file);

        // Chunk 6 changed: the chunks before it read (ahead) and open; it fails when the reader opens it.
        var flipped = (byte[])pristine.Clone();
        flipped[48 + 6 * (Chunk + 16) + 7] ^= 1;
        File.WriteAllBytes(file, flipped);
        using (var stored = StoredFile.Open(file, key))
        {
            var buffer = new byte[Chunk];
            for (int c = 0; c < 6; c++)
            {
                stored.ReadExactly(buffer, (long)c * Chunk);
                Assert.True(data.AsSpan(c * Chunk, Chunk).SequenceEqual(buffer), $"chunk {c}");
            }
            Assert.Equal($"{file}: chunk 6 (data at {6 * Chunk}..{7 * Chunk}) fails authentication: changed since the dump",
                Assert.Throws<CrispException>(() => stored.ReadExactly(buffer, 6L * Chunk)).Message);
        }

        // Cut short while it is read (after the read-ahead began, before it reached chunk 7): the reader gets the
        // truncation at chunk 7, as it would reading it itself.
        File.WriteAllBytes(file, pristine);
        using (var stored = StoredFile.Open(file, key))
        {
            var buffer = new byte[Chunk];
            stored.ReadExactly(buffer, 0);
            stored.ReadExactly(buffer, Chunk);
            using (var cut = new FileStream(file, FileMode.Open, FileAccess.Write))
                cut.SetLength(48 + 7 * (Chunk + 16) + 100);
            for (int c = 2; c < 7; c++)
                stored.ReadExactly(buffer, (long)c * Chunk);
            Assert.Contains("truncated image", Assert.Throws<ImageFormatException>(() => stored.ReadExactly(buffer, 7L * Chunk)).Message);
        }
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

    [Fact]
    public void SmallImagesAreOneShortChunkBoundToTheirNameAndAuthenticatedBeforeUse()
    {
        using var tmp = new TempImageDir();
        var key = ImageKey.FromBytes(RandomNumberGenerator.GetBytes(32));
        using (var dir = ImageDirectory.Create(tmp.Path, null, key))
        {
            dir.Write(ImageFile.Pstree, new Crisp.Images.Proto.pstree_entry { Pid = 7, Ppid = 0, Pgid = 7, Sid = 7, Threads = { 7 } });
            using var pipes = dir.CreateWriter(ImageFile.PipesData);
            pipes.Write(new Crisp.Images.Proto.pipe_data_entry { PipeId = 1, Bytes = 11 }, "secret-pipe"u8);
        }
        string pstree = tmp.File("pstree.img"), pipesData = tmp.File("pipes-data.img");
        Assert.True(StoredFile.Probe(pstree).Encrypted);
        Assert.Equal(-1, File.ReadAllBytes(pipesData).AsSpan().IndexOf("secret-pipe"u8));
        using (var dir = ImageDirectory.Open(tmp.Path, key))
        {
            Assert.Equal(7u, dir.ReadOne<Crisp.Images.Proto.pstree_entry>(ImageFile.Pstree).Pid);
            EncryptedImages.CheckReadable(dir);
        }
        // Renamed over another image: the name is part of every chunk's associated data.
        File.Copy(pstree, tmp.File("pipes.img"));
        using (var dir = ImageDirectory.Open(tmp.Path, key))
            Assert.Contains("pipes.img: chunk 0 (data at 0..", Assert.Throws<CrispException>(() => EncryptedImages.CheckReadable(dir)).Message);
        File.Delete(tmp.File("pipes.img"));
        // A flipped byte in a small image: refused up front, naming it.
        var bytes = File.ReadAllBytes(pipesData);
        bytes[^20] ^= 1;
        File.WriteAllBytes(pipesData, bytes);
        using (var dir = ImageDirectory.Open(tmp.Path, key))
            Assert.Equal($"{pipesData}: chunk 0 (data at 0..{bytes.Length - 64}) fails authentication: changed since the dump",
                Assert.Throws<CrispException>(() => EncryptedImages.CheckReadable(dir)).Message);
        // No key, and a plain image where a key is given: one line each.
        using (var dir = ImageDirectory.Open(tmp.Path))
            Assert.Contains($"encrypted (AES-256-GCM, key id {key.IdText}); pass {ImageKey.Option} KEY", Assert.Throws<CrispException>(() => EncryptedImages.CheckReadable(dir)).Message);
        using (var plain = ImageDirectory.Create(tmp.Path))
            plain.Write(ImageFile.Pstree, new Crisp.Images.Proto.pstree_entry { Pid = 7, Ppid = 0, Pgid = 7, Sid = 7, Threads = { 7 } });
        using (var dir = ImageDirectory.Open(tmp.Path, key))
            Assert.Contains("pstree.img: not encrypted, but --encrypt-key was given", Assert.Throws<CrispException>(() => dir.ReadAll<Crisp.Images.Proto.pstree_entry>(ImageFile.Pstree)).Message);
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
