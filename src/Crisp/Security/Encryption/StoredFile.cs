using Microsoft.Win32.SafeHandles;

namespace Crisp.Security.Encryption;

/// <summary>The stored bytes of an image file for reading, by positioned reads: the file itself, or its plaintext
/// when it is encrypted (<see cref="EncryptedFile"/>). Pages are read this way (random access as the page filler
/// asks); other images through <see cref="OpenStream"/>.</summary>
public abstract class StoredFile : IDisposable
{
    protected StoredFile(string path) => Path = path;

    public string Path { get; }

    /// <summary>Bytes of contents (the plaintext length of an encrypted file).</summary>
    public abstract long Length { get; }

    /// <summary>Fills <paramref name="buffer"/> with the contents at <paramref name="offset"/>.</summary>
    public abstract void ReadExactly(Span<byte> buffer, long offset);

    public abstract void Dispose();

    /// <summary>Opens a file by path, encrypted or not as its first bytes say (see <see cref="Open(SafeFileHandle, string, ImageKey?, Images.Manifest.StreamedVerification.FileCheck?)"/>).</summary>
    public static StoredFile Open(string path, ImageKey? key, Images.Manifest.StreamedVerification.FileCheck? check = null) =>
        Open(File.OpenHandle(path), path, key, check);

    /// <summary>Opens a file (taking over <paramref name="handle"/>), encrypted or not as its first bytes say. An
    /// encrypted one opened without a key (<paramref name="key"/> null) still tells its length (`crisp show`);
    /// reading it fails in one line. A plain one opened with a key is refused: it could have been swapped in.</summary>
    /// <param name="check">The manifest check fed with the file's bytes as they are read (restore), or null.</param>
    public static StoredFile Open(SafeFileHandle handle, string path, ImageKey? key, Images.Manifest.StreamedVerification.FileCheck? check = null)
    {
        try
        {
            Span<byte> head = stackalloc byte[EncryptedFileFormat.HeaderSize];
            int n = RandomAccess.Read(handle, head, 0);
            StoredFile file;
            if (EncryptedFileFormat.HasMagic(head[..n]))
                file = new EncryptedFile(path, handle, head[..n], key);
            else if (key is not null)
                throw new CrispException($"{path}: not encrypted, but {ImageKey.Option} was given (refusing images that could have been swapped for plain ones)");
            else
                file = new PlainStoredFile(path, handle);
            file._check = check;
            return file;
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>A sequential stream over an image's contents (<see cref="Images.ImageReader"/>, raw images such as
    /// a tmpfs archive), taking over <paramref name="handle"/>: the file itself when it is plain, its plaintext
    /// authenticated chunk by chunk when it is encrypted. An encrypted file without a key is refused here, in one
    /// line naming it.</summary>
    public static Stream OpenStream(SafeFileHandle handle, string path, ImageKey? key)
    {
        var file = Open(handle, path, key);
        if (file is PlainStoredFile plain)
            // Nothing read through its offset yet: at 0. The buffer is the file's size up to 64 KiB: most images are a
            // few hundred bytes, and a 64 KiB buffer for each would be 16 fresh pages (~10 µs a fault on this kind of VM).
            return new FileStream(plain.Handle, FileAccess.Read, (int)Math.Clamp(plain.Length + 1, 2, 1 << 16));
        if (key is null)
        {
            string id = ((EncryptedFile)file).KeyIdText;
            file.Dispose();
            throw new CrispException($"{path}: encrypted (AES-256-GCM, key id {id}); pass {ImageKey.Option} KEY to read it");
        }
        return new StoredFileStream(file);
    }

    private Images.Manifest.StreamedVerification.FileCheck? _check;

    /// <summary>Completes the manifest check of the file when it is checked as it streams: hashes what no read
    /// reached and compares (throws <see cref="Images.ImageVerifyException"/> on a mismatch).</summary>
    public void VerifyRest() => _check?.Finish();

    /// <summary>Whether the file at <paramref name="path"/> is encrypted (its magic), and with which key id.</summary>
    public static (bool Encrypted, string KeyId) Probe(string path)
    {
        using var handle = File.OpenHandle(path);
        return Probe(handle);
    }

    public static (bool Encrypted, string KeyId) Probe(SafeFileHandle handle)
    {
        Span<byte> head = stackalloc byte[EncryptedFileFormat.HeaderSize];
        int n = RandomAccess.Read(handle, head, 0);
        return EncryptedFileFormat.HasMagic(head[..n]) && n == EncryptedFileFormat.HeaderSize
            ? (true, Convert.ToHexStringLower(EncryptedFileFormat.KeyId(head)))
            : (false, "");
    }

    /// <summary>Reads stored bytes of the file, fed to the manifest check as they pass.</summary>
    protected void ReadRaw(SafeFileHandle handle, Span<byte> buffer, long offset)
    {
        ReadAll(handle, Path, buffer, offset);
        _check?.Read(handle, buffer, offset);
    }

    private static void ReadAll(SafeFileHandle handle, string path, Span<byte> buffer, long offset)
    {
        int done = 0;
        while (done < buffer.Length)
        {
            int n = RandomAccess.Read(handle, buffer[done..], offset + done);
            if (n <= 0)
                throw new Images.ImageFormatException(path, offset + done, "truncated image");
            done += n;
        }
    }
}

/// <summary>An image as CRIU writes it: the bytes themselves.</summary>
internal sealed class PlainStoredFile(string path, SafeFileHandle handle) : StoredFile(path)
{
    public SafeFileHandle Handle => handle;

    public override long Length { get; } = RandomAccess.GetLength(handle);

    public override void ReadExactly(Span<byte> buffer, long offset) => ReadRaw(handle, buffer, offset);

    public override void Dispose() => handle.Dispose();
}
