using System.IO.Hashing;
using System.Security.Cryptography;

namespace Crisp.Images.Manifest;

/// <summary>The hash a manifest line names. XXH128 by default: the manifest guards against damage (a torn copy,
/// a flipped bit, a truncated file), not against an attacker, and XXH3 runs near memory speed where SHA-256 costs
/// a core for ~1.5 GiB/s. A signed checkpoint (--sign-key) uses SHA-256: a signature is only as strong as the
/// hash of what it covers. Manifests of older crisp (SHA-256 only) still verify.</summary>
public sealed record ManifestHash(string Name, int Size, bool Cryptographic)
{
    public static readonly ManifestHash Xxh128 = new("XXH128", 16, Cryptographic: false);
    public static readonly ManifestHash Sha256 = new("SHA256", 32, Cryptographic: true);

    public static ManifestHash? FromName(string name) => name switch
    {
        "XXH128" => Xxh128,
        "SHA256" => Sha256,
        _ => null,
    };

    /// <summary>The algorithm of a bare hex hash (sha256sum's untagged lines): by its length.</summary>
    public static ManifestHash? FromSize(int size) => size == Xxh128.Size ? Xxh128 : size == Sha256.Size ? Sha256 : null;

    public Hasher Start() => ReferenceEquals(this, Xxh128) ? new Xxh128Hasher() : new Sha256Hasher();

    /// <summary>Hashes a whole file (64 KiB reads from a pooled buffer).</summary>
    public byte[] OfFile(string path)
    {
        using var handle = File.OpenHandle(path);
        return OfHandle(handle);
    }

    /// <summary>Hashes a whole open file from its start.</summary>
    public byte[] OfHandle(Microsoft.Win32.SafeHandles.SafeFileHandle handle)
    {
        var hasher = Start();
        byte[] buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(1 << 16);
        try
        {
            long at = 0;
            int n;
            while ((n = RandomAccess.Read(handle, buffer, at)) > 0)
            {
                hasher.Append(buffer.AsSpan(0, n));
                at += n;
            }
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
        }
        return hasher.Finish();
    }

    public override string ToString() => Name;

    /// <summary>An incremental hash of bytes as they stream.</summary>
    public abstract class Hasher
    {
        public long Length { get; private set; }

        public void Append(ReadOnlySpan<byte> data)
        {
            Add(data);
            Length += data.Length;
        }

        protected abstract void Add(ReadOnlySpan<byte> data);
        public abstract byte[] Finish();
    }

    private sealed class Xxh128Hasher : Hasher
    {
        private readonly XxHash128 _hash = new();
        protected override void Add(ReadOnlySpan<byte> data) => _hash.Append(data);
        // Big-endian canonical form: the digits xxhsum prints.
        public override byte[] Finish() => _hash.GetCurrentHash();
    }

    private sealed class Sha256Hasher : Hasher
    {
        private readonly IncrementalHash _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        protected override void Add(ReadOnlySpan<byte> data) => _hash.AppendData(data);
        public override byte[] Finish()
        {
            byte[] h = _hash.GetHashAndReset();
            _hash.Dispose();
            return h;
        }
    }
}
