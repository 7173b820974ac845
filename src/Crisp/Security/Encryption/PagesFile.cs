using Microsoft.Win32.SafeHandles;

namespace Crisp.Security.Encryption;

/// <summary>The stored bytes of a pages-N.img for restore, by positioned reads: the file itself, or its
/// plaintext when it is encrypted (<see cref="EncryptedPagesFile"/>).</summary>
public abstract class PagesFile : IDisposable
{
    protected PagesFile(string path) => Path = path;

    public string Path { get; }

    /// <summary>Bytes of page data (the plaintext length of an encrypted file).</summary>
    public abstract long Length { get; }

    /// <summary>Fills <paramref name="buffer"/> with the page data at <paramref name="offset"/>.</summary>
    public abstract void ReadExactly(Span<byte> buffer, long offset);

    public abstract void Dispose();

    /// <summary>Opens a pages file, encrypted or not as its first bytes say. An encrypted one opened without a key
    /// (<paramref name="key"/> null) still tells its length (`crisp show`); reading it fails in one line.</summary>
    /// <param name="check">The manifest check fed with the file's bytes as they are read (restore), or null.</param>
    public static PagesFile Open(string path, PagesKey? key, Images.Manifest.StreamedVerification.FileCheck? check = null)
    {
        var file = Open(path, key);
        file._check = check;
        return file;
    }

    private Images.Manifest.StreamedVerification.FileCheck? _check;

    /// <summary>Completes the manifest check of the file when it is checked as it streams: hashes what no read
    /// reached and compares (throws <see cref="Images.ImageVerifyException"/> on a mismatch).</summary>
    public void VerifyRest() => _check?.Finish();

    private static PagesFile Open(string path, PagesKey? key)
    {
        var handle = File.OpenHandle(path);
        try
        {
            Span<byte> head = stackalloc byte[EncryptedPagesFormat.HeaderSize];
            int n = RandomAccess.Read(handle, head, 0);
            if (EncryptedPagesFormat.HasMagic(head[..n]))
                return new EncryptedPagesFile(path, handle, head[..n], key);
            if (key is not null)
                throw new CrispException($"{path}: not encrypted, but {PagesKey.Option} was given (refusing pages that could have been swapped for plain ones)");
            return new PlainPagesFile(path, handle);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>Whether the pages file at <paramref name="path"/> is encrypted (its magic), and with which key id.</summary>
    public static (bool Encrypted, string KeyId) Probe(string path)
    {
        using var handle = File.OpenHandle(path);
        Span<byte> head = stackalloc byte[EncryptedPagesFormat.HeaderSize];
        int n = RandomAccess.Read(handle, head, 0);
        return EncryptedPagesFormat.HasMagic(head[..n]) && n == EncryptedPagesFormat.HeaderSize
            ? (true, Convert.ToHexStringLower(EncryptedPagesFormat.KeyId(head)))
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
                throw new Images.ImageFormatException(path, offset + done, "truncated pages file");
            done += n;
        }
    }
}

/// <summary>A pages file as CRIU writes it: raw pages.</summary>
internal sealed class PlainPagesFile(string path, SafeFileHandle handle) : PagesFile(path)
{
    public override long Length { get; } = RandomAccess.GetLength(handle);

    public override void ReadExactly(Span<byte> buffer, long offset) => ReadRaw(handle, buffer, offset);

    public override void Dispose() => handle.Dispose();
}
