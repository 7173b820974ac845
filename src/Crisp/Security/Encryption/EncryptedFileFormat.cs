using System.Buffers.Binary;
using System.Text;

namespace Crisp.Security.Encryption;

/// <summary>
/// An encrypted image file (pages-N.img, core-N.img, pipes-data.img, a tmpfs archive — every file a dump writes in
/// its images directory): a 48-byte header — magic "CRISPENC", version, chunk size, a random 16-byte salt, the key
/// id, 8 zero bytes — then the contents in chunks of <see cref="ChunkSize"/> plaintext bytes, each AES-256-GCM
/// ciphertext followed by its 16-byte tag (a small image is one short chunk: 64 bytes more than its plaintext).
/// Chunk i's nonce is 4 zero bytes and i (big-endian u64) under the file's own key (HKDF of the key and the salt);
/// its associated data is the header, the file's name and a last-chunk byte, so chunks cannot be moved, dropped or
/// cut off at the end, nor a whole file renamed over another, unnoticed. Fixed-size chunks keep random access:
/// plaintext offset p lies in chunk p / ChunkSize.
/// </summary>
internal static class EncryptedFileFormat
{
    public const int HeaderSize = 48, TagSize = 16, NonceSize = 12;
    public const int ChunkSize = 1 << 20;
    /// <summary>2: the file name joined the associated data (1 encrypted pages only, without it).</summary>
    public const int Version = 2;
    public static ReadOnlySpan<byte> Magic => "CRISPENC"u8;

    public static byte[] Header(ImageKey key, ReadOnlySpan<byte> salt)
    {
        var h = new byte[HeaderSize];
        Magic.CopyTo(h);
        BinaryPrimitives.WriteUInt32LittleEndian(h.AsSpan(8), Version);
        BinaryPrimitives.WriteUInt32LittleEndian(h.AsSpan(12), ChunkSize);
        salt.CopyTo(h.AsSpan(16, 16));
        key.Id.CopyTo(h.AsSpan(32, 8));
        return h;
    }

    public static bool HasMagic(ReadOnlySpan<byte> start) => start.Length >= Magic.Length && start[..Magic.Length].SequenceEqual(Magic);

    public static ReadOnlySpan<byte> Salt(ReadOnlySpan<byte> header) => header.Slice(16, 16);

    public static ReadOnlySpan<byte> KeyId(ReadOnlySpan<byte> header) => header.Slice(32, 8);

    public static void Nonce(Span<byte> nonce, long chunk)
    {
        nonce[..4].Clear();
        BinaryPrimitives.WriteInt64BigEndian(nonce[4..], chunk);
    }

    /// <summary>Associated data of a chunk: the header, the file's name, then 1 for the last chunk and 0 for any other.</summary>
    public static byte[] Aad(byte[] header, string fileName, bool last) =>
        [.. header, .. Encoding.UTF8.GetBytes(fileName), last ? (byte)1 : (byte)0];

    /// <summary>Plaintext length of an encrypted file of <paramref name="fileLength"/> bytes; -1 when no
    /// file this format writes has that length (always at least one chunk, every chunk a whole tag).</summary>
    public static long PlainLength(long fileLength)
    {
        long body = fileLength - HeaderSize;
        if (body < TagSize)
            return -1;
        long full = body / (ChunkSize + TagSize), rest = body % (ChunkSize + TagSize);
        if (rest == 0)
            return full * ChunkSize;
        return rest < TagSize ? -1 : full * ChunkSize + rest - TagSize;
    }
}
