using System.Security.Cryptography;
using Microsoft.Win32.SafeHandles;

namespace Crisp.Images.Manifest;

/// <summary>The pages files of a restore whose manifest hashes are checked as their pages are read, instead of in
/// a pass of their own before. Each file's bytes are hashed in file order as reads pass them (a gap a read skips,
/// such as the vdso's pages, is read and hashed on the way; bytes read again are not hashed twice);
/// <see cref="Finish(string)"/> hashes what no read reached and compares. The restorer calls
/// <see cref="FinishAll"/> before any restored task runs, so a damaged file fails the restore (every puppet
/// killed) before a single instruction of restored code executes.</summary>
public sealed class StreamedVerification
{
    private readonly Dictionary<string, FileCheck> _files = new(StringComparer.Ordinal);

    /// <summary>Registers a pages file and the manifest entry it must match.</summary>
    public void Expect(string path, ImageManifest.Entry entry, string manifestName)
    {
        lock (_files)
            _files.TryAdd(Path.GetFullPath(path), new FileCheck(Path.GetFullPath(path), entry, manifestName));
    }

    /// <summary>The check a reader of <paramref name="path"/> feeds; null when its hash is not left to the stream.</summary>
    public FileCheck? For(string path)
    {
        lock (_files)
            return _files.GetValueOrDefault(Path.GetFullPath(path));
    }

    /// <summary>Completes one file's check (throws <see cref="ImageVerifyException"/> when it does not match).</summary>
    public void Finish(string path) => For(path)?.Finish();

    /// <summary>Completes every file's check: those read in part, and those nothing read.</summary>
    public void FinishAll()
    {
        List<FileCheck> all;
        lock (_files)
            all = [.. _files.Values];
        foreach (var f in all)
            f.Finish();
    }

    /// <summary>One file's running hash.</summary>
    public sealed class FileCheck(string path, ImageManifest.Entry entry, string manifestName)
    {
        private const int GapChunk = 1 << 20;
        private readonly ManifestHash.Hasher _hasher = entry.Algorithm.Start();
        private long _hashedTo;
        private bool _finished;

        public string Path { get; } = path;

        /// <summary>Bytes just read from the file at <paramref name="offset"/> (through <paramref name="handle"/>).</summary>
        public void Read(SafeFileHandle handle, ReadOnlySpan<byte> data, long offset)
        {
            lock (this)
            {
                long end = offset + data.Length;
                if (_finished || end <= _hashedTo)
                    return;
                if (offset > _hashedTo)
                    HashFile(handle, offset);
                _hasher.Append(data[(int)(_hashedTo - offset)..]);
                _hashedTo = end;
            }
        }

        public void Finish()
        {
            lock (this)
            {
                if (_finished)
                    return;
                using (var handle = File.OpenHandle(Path))
                    HashFile(handle, long.MaxValue);
                _finished = true;
                if (!CryptographicOperations.FixedTimeEquals(_hasher.Finish(), entry.Hash))
                    throw ImageManifest.Mismatch(Path, entry.Algorithm, manifestName);
            }
        }

        /// <summary>Hashes the file from where the hash is up to <paramref name="until"/> (or its end).</summary>
        private void HashFile(SafeFileHandle handle, long until)
        {
            // Usually nothing is left once the pages have streamed: no 1 MiB buffer for that.
            until = Math.Min(until, RandomAccess.GetLength(handle));
            if (_hashedTo >= until)
                return;
            byte[] buffer = System.Buffers.ArrayPool<byte>.Shared.Rent((int)Math.Min(GapChunk, until - _hashedTo));
            try
            {
                while (_hashedTo < until)
                {
                    int want = (int)Math.Min(buffer.Length, until - _hashedTo);
                    int n = RandomAccess.Read(handle, buffer.AsSpan(0, want), _hashedTo);
                    if (n <= 0)
                        break;
                    _hasher.Append(buffer.AsSpan(0, n));
                    _hashedTo += n;
                }
            }
            finally
            {
                System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
            }
        }
    }
}
