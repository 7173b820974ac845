using Crisp.Linux;
using Crisp.Security;
using Microsoft.Win32.SafeHandles;

namespace Crisp.Images;

/// <summary>A directory of CRIU-format images (one checkpoint), held open as a directory fd for the run: every
/// image is opened and created relative to it (openat), so the directory checked (strict modes, the warning
/// about its mode) is the one read and written, whatever is renamed meanwhile. With a key (--encrypt-key)
/// every image written here is encrypted as it streams and every image read is decrypted and authenticated —
/// here, for all kinds alike.</summary>
public sealed class ImageDirectory : IDisposable
{
    private ImageDirectory(string path, UnixFd handle, ImageModes modes, Security.Encryption.ImageKey? key)
    {
        Path = System.IO.Path.GetFullPath(path);
        Handle = handle;
        Modes = modes;
        Key = key;
    }

    /// <summary>The directory's path, for messages and for what needs a path (plugins, scripts, the manifest's parent chain).</summary>
    public string Path { get; }

    /// <summary>The directory, open O_RDONLY|O_DIRECTORY|O_CLOEXEC once.</summary>
    public UnixFd Handle { get; }

    /// <summary>Where page writers and readers count the page bytes they move (a dump's or restore's progress).</summary>
    public ProgressMeter? Progress { get; set; }

    /// <summary>The modes files written here get (private unless --images-mode says otherwise).</summary>
    public ImageModes Modes { get; }

    /// <summary>--encrypt-key: every image is written encrypted with it and read through it; null: plain.</summary>
    public Security.Encryption.ImageKey? Key { get; }

    /// <summary>Opens an existing directory, or uses <paramref name="handle"/> (a directory fd the caller holds,
    /// e.g. the RPC's images_dir_fd; duplicated, the caller keeps its own).</summary>
    public static ImageDirectory Open(string path, Security.Encryption.ImageKey? key = null, bool verifyOnOpen = false, UnixFd? handle = null) =>
        new(path, handle is null ? OpenHandle(path) : FileIo.DupCloexec(handle.Fd), ImageModes.Private, key) { VerifyOnOpen = verifyOnOpen };

    /// <summary>Opens a directory for writing, creating it when missing (0700 unless <paramref name="modes"/>
    /// say otherwise; an existing one keeps its mode).</summary>
    public static ImageDirectory Create(string path, ImageModes? modes = null, Security.Encryption.ImageKey? key = null, UnixFd? handle = null,
        bool hashesForManifest = true)
    {
        modes ??= ImageModes.Private;
        if (handle is null)
            PrivateFile.CreateDirectory(path, modes.Directory);
        return new ImageDirectory(path, handle is null ? OpenHandle(path) : FileIo.DupCloexec(handle.Fd), modes, key) { HashesForManifest = hashesForManifest };
    }

    /// <summary>The directory fd of <paramref name="path"/>; a missing directory is one line.</summary>
    public static UnixFd OpenHandle(string path)
    {
        try
        {
            return FileIo.Open(System.IO.Path.GetFullPath(path), FileIo.O_RDONLY | FileIo.O_DIRECTORY);
        }
        catch (SyscallException e)
        {
            throw e.Errno is 2 or 20 ? new DirectoryNotFoundException($"{path}: image directory not found")
                : new CrispException($"{path}: cannot open the image directory: {Errnos.Describe(e.Errno)}");
        }
    }

    public void Dispose() => Handle.Dispose();

    /// <summary>Opens <paramref name="name"/> in the directory for reading: its stored bytes, not decrypted.</summary>
    public SafeFileHandle OpenRaw(string name)
    {
        try
        {
            return new SafeFileHandle(FileIo.OpenAt(Handle.Fd, name, FileIo.O_RDONLY).Detach(), ownsHandle: true);
        }
        catch (SyscallException e)
        {
            throw new ImageFormatException(PathOf(name), 0, e.Errno == 2 ? "file not found" : $"cannot open: {Errnos.Describe(e.Errno)}");
        }
    }

    /// <summary>An image's contents as a stream: decrypted and authenticated chunk by chunk when it is encrypted;
    /// an encrypted image without the key, or a plain one with a key, is one line naming it.</summary>
    public Stream OpenRead(string name) => _checked.TryGetValue(name, out var bytes)
        ? new MemoryStream(bytes, writable: false)
        : Security.Encryption.StoredFile.OpenStream(OpenRaw(name), PathOf(name), Key);

    /// <summary>A new image with the directory's file mode, encrypted as it is written when the directory has a key.</summary>
    public Stream CreateStream(string name, int bufferSize = 1 << 16)
    {
        ForgetChecked(name);
        Stream stream = PrivateFile.CreateAt(Handle, name, PathOf(name), Modes.File, Key is null ? bufferSize : 0);
        return Key is { } key ? new Security.Encryption.EncryptingStream(stream, key, name) : stream;
    }

    /// <summary>A new pages-N.img: encrypted as it is written when the directory has a pages key, and hashed for
    /// the manifest as it goes (what reaches the disk, ciphertext included; not where <see cref="HashesForManifest"/> is off). Unbuffered: page data comes in whole
    /// batches (no per-file buffer to allocate for each task's pages).</summary>
    public Stream CreatePages(uint pagesId)
    {
        string name = ImageFile.Pages(pagesId).FileName;
        Stream stream = PrivateFile.CreateAt(Handle, name, PathOf(name), Modes.File, 0);
        if (HashesForManifest)
            stream = new Manifest.HashingStream(stream, name, Written);
        return Key is { } key ? new Security.Encryption.EncryptingStream(stream, key, name) : stream;
    }

    /// <summary>Whether files written here are hashed as they go for a manifest (<see cref="Written"/>). Off where no
    /// manifest is written — `crisp page-server`, whose pages join a dump's images elsewhere —: there the hash was a
    /// pass over every page received for nothing, on the CPU the receive and the write need (issue 17).</summary>
    public bool HashesForManifest { get; init; } = true;

    /// <summary>Hashes of the files hashed as they were written here (the pages), for the manifest; the
    /// algorithm is the one the manifest will name (SHA-256 for a signed checkpoint).</summary>
    public Manifest.WrittenHashes Written { get; private set; } = new(Manifest.ManifestHash.Xxh128);

    /// <summary>The manifest's hash for this dump; set before any page is written.</summary>
    public Manifest.ManifestHash ManifestHash
    {
        get => Written.Algorithm;
        set => Written = new(value);
    }

    /// <summary>At restore: the pages files whose manifest hashes are checked as their pages stream (every other
    /// image was verified before anything was made); null: nothing left to check.</summary>
    public Manifest.StreamedVerification? Pending { get; set; }

    /// <summary>Opens a pages-N.img for positioned reads of its page data (decrypted when it is encrypted),
    /// checked against the manifest as it is read when its check was left to the stream.</summary>
    public Security.Encryption.StoredFile OpenPages(ImageFile file)
    {
        string path = PathOf(file);
        if (VerifyOnOpen)
            ImageManifest.VerifyFile(this, file.FileName, Pending);
        return Security.Encryption.StoredFile.Open(OpenRaw(file.FileName), path, Key, Pending?.For(path));
    }

    /// <summary>A parent checkpoint read through a pre-dump chain: each file is checked against the parent's own
    /// manifest when it is opened (a pages file as it streams when <see cref="Pending"/> is set).</summary>
    public bool VerifyOnOpen { get; init; }

    /// <summary>A new raw image (a tmpfs archive, iproute2 dumps) with the directory's file mode, encrypted with its key.</summary>
    public Stream CreateFile(ImageFile file, int bufferSize = 1 << 16) => CreateStream(file.FileName, bufferSize);

    /// <summary>A raw image's whole contents (decrypted).</summary>
    public byte[] ReadAllBytes(ImageFile file)
    {
        using var stream = OpenRead(file.FileName);
        var bytes = new byte[stream.Length];
        stream.ReadExactly(bytes);
        return bytes;
    }

    public string PathOf(ImageFile file) => PathOf(file.FileName);

    public string PathOf(string name) => System.IO.Path.Combine(Path, name);

    public bool Exists(ImageFile file) => Exists(file.FileName);

    /// <summary>Whether <paramref name="name"/> is a file here (through the handle).</summary>
    public bool Exists(string name) => _checked.ContainsKey(name) || FileStatus.TryAt(Handle, name, followSymlink: true) is { IsDirectory: false };

    /// <summary>The names of the files here, read through the handle: /proc/self/fd/N is the directory it holds,
    /// whatever path it has now (the RPC passes only the fd).</summary>
    public IEnumerable<string> FileNames() =>
        Directory.EnumerateFiles($"/proc/self/fd/{Handle.Fd}").Select(System.IO.Path.GetFileName).OfType<string>();

    /// <summary>The size of file <paramref name="name"/> here, as stored.</summary>
    public long LengthOf(string name)
    {
        using var handle = OpenRaw(name);
        return RandomAccess.GetLength(handle);
    }

    /// <summary>A small file's bytes as stored (the manifest and its signature are never encrypted).</summary>
    public byte[] ReadRawBytes(string name)
    {
        using var handle = OpenRaw(name);
        var bytes = new byte[RandomAccess.GetLength(handle)];
        int at = ReadFromStart(handle, bytes);
        return at == bytes.Length ? bytes : bytes[..at];
    }

    /// <summary>Fills <paramref name="bytes"/> from the file's start; returns how many it holds (fewer at its end).</summary>
    private static int ReadFromStart(SafeFileHandle handle, byte[] bytes)
    {
        int at = 0, n;
        while (at < bytes.Length && (n = RandomAccess.Read(handle, bytes.AsSpan(at), at)) > 0)
            at += n;
        return at;
    }

    /// <summary>Writes file <paramref name="name"/> whole with the directory's file mode, replacing it atomically
    /// (NAME.tmp, then renameat): a reader sees the old file or the new one.</summary>
    public void WriteRawReplacing(string name, ReadOnlySpan<byte> data)
    {
        ForgetChecked(name);
        string tmp = name + ".tmp";
        using (var stream = PrivateFile.CreateAt(Handle, tmp, PathOf(tmp), Modes.File))
            stream.Write(data);
        FileIo.RenameAt(Handle.Fd, tmp, name);
    }

    /// <summary>Removes file <paramref name="name"/> when it is here.</summary>
    public void Delete(string name)
    {
        ForgetChecked(name);
        FileIo.UnlinkAt(Handle.Fd, name);
    }

    /// <summary>The hash of file <paramref name="name"/> as stored (ciphertext when encrypted).</summary>
    public byte[] HashOf(string name, Manifest.ManifestHash algorithm)
    {
        using var handle = OpenRaw(name);
        return algorithm.OfHandle(handle);
    }

    // Small plain images the manifest check read whole, by name: a restore then parses the very bytes that were
    // checked (nothing can change them in between) and opens each image once, not three times (check, encryption
    // probe, parse: ~12 syscalls an image, ~30 images in a small tree's checkpoint). Bounded, for crisp's footprint.
    private readonly Dictionary<string, byte[]> _checked = new(StringComparer.Ordinal);
    private long _checkedBytes;
    private const int CheckedFileMax = 256 << 10;
    private const long CheckedTotalMax = 8L << 20;

    /// <summary>As <see cref="HashOf"/>, for the manifest check: a small plain image is read whole, hashed, and its
    /// bytes kept for the reads that follow (<see cref="ForgetChecked"/> drops them when the hash does not match).</summary>
    public byte[] HashKeeping(string name, Manifest.ManifestHash algorithm)
    {
        using var handle = OpenRaw(name);
        long length = RandomAccess.GetLength(handle);
        // Pages are read by offset as the restore asks (and checked as they stream where it does): never kept.
        if (Key is not null || length > CheckedFileMax || _checkedBytes + length > CheckedTotalMax
            || ImageKind.FromFileName(name) is { Kind: var kind } && kind == ImageKind.Pages)
            return algorithm.OfHandle(handle);
        var bytes = new byte[length];
        int at = ReadFromStart(handle, bytes);
        if (at < bytes.Length || RandomAccess.Read(handle, stackalloc byte[1], at) > 0)
            return algorithm.OfHandle(handle);   // changing under us: hashed as it is now, nothing kept
        var hasher = algorithm.Start();
        hasher.Append(bytes);
        if (!Security.Encryption.EncryptedFileFormat.HasMagic(bytes.AsSpan(0, Math.Min(bytes.Length, Security.Encryption.EncryptedFileFormat.HeaderSize))))
        {
            ForgetChecked(name);
            _checked[name] = bytes;
            _checkedBytes += bytes.Length;
        }
        return hasher.Finish();
    }

    /// <summary>Drops the kept bytes of <paramref name="name"/> (its check failed, or it is written again).</summary>
    public void ForgetChecked(string name)
    {
        if (_checked.Count > 0 && _checked.Remove(name, out var old))
            _checkedBytes -= old.Length;
    }

    /// <summary>Drops every kept image: a new check of the whole directory starts from the files as they are now.</summary>
    public void ForgetAllChecked()
    {
        _checked.Clear();
        _checkedBytes = 0;
    }

    /// <summary>Whether <paramref name="name"/>'s bytes were checked against the manifest and are kept (plain, so
    /// there is no encryption header to probe).</summary>
    public bool IsKeptChecked(string name) => _checked.ContainsKey(name);

    public ImageReader OpenReader(ImageFile file) => ImageReader.Open(OpenRead(file.FileName), PathOf(file), file.Kind);

    /// <summary>A protobuf image, buffered in one page: most are a few hundred bytes, and a larger buffer per image is
    /// fresh memory to fault in for each of a dump's dozens of images. Hashed for the manifest as it is written, like
    /// the pages: the manifest then need not open and read every image again at the end of a dump.</summary>
    public ImageWriter CreateWriter(ImageFile file)
    {
        string name = file.FileName;
        ForgetChecked(name);
        Stream stream = PrivateFile.CreateAt(Handle, name, PathOf(name), Modes.File, Key is null ? 4096 : 0);
        if (HashesForManifest)
            stream = new Manifest.HashingStream(stream, name, Written);
        if (Key is { } key)
            stream = new Security.Encryption.EncryptingStream(stream, key, name);
        return ImageWriter.Create(stream, PathOf(file), file.Kind);
    }

    /// <summary>Writes a whole image of <paramref name="entries"/>.</summary>
    public void Write(ImageFile file, params Google.Protobuf.IMessage[] entries)
    {
        using var writer = CreateWriter(file);
        foreach (var e in entries)
            writer.Write(e);
    }

    /// <summary>Reads every entry of an image; empty when the file does not exist.</summary>
    public List<T> ReadAll<T>(ImageFile file) where T : class, Google.Protobuf.IMessage<T>, new()
    {
        if (!Exists(file))
            return [];
        using var reader = OpenReader(file);
        return reader.ReadAll<T>();
    }

    /// <summary>The one entry of an image that holds exactly one (fs, …); anything else is a damaged image.</summary>
    public T ReadOne<T>(ImageFile file) where T : class, Google.Protobuf.IMessage<T>, new()
    {
        var all = ReadAll<T>(file);
        return all.Count == 1 ? all[0] : throw new CrispException($"{file}: expected one entry, found {all.Count}");
    }

    /// <summary>The one entry of an image the checkpoint must have; a missing file is refused naming
    /// <paramref name="why"/> it is needed.</summary>
    public T ReadRequired<T>(ImageFile file, string why) where T : class, Google.Protobuf.IMessage<T>, new() =>
        Exists(file) ? ReadOne<T>(file) : throw new CrispException($"{PathOf(file)}: missing ({why})");

    /// <summary>Image files present, with their kind where the name is a known one.</summary>
    public IReadOnlyList<(string FileName, ImageFile? File)> List() =>
        FileNames()
            .Order(StringComparer.Ordinal)
            .Select(n => (n, ImageKind.FromFileName(n)))
            .ToList();

    /// <summary>--page-server: task and shared-memory pagemaps (with their pages) go to this server instead of here.</summary>
    public PageServer.PageServerClient? PageServer { get; set; }

    public PagemapWriter CreatePagemap(long pid, uint pagesId) => CreatePagemap(ImageFile.Pagemap(pid), pagesId);

    public PagemapReader OpenPagemap(long pid) => PagemapReader.Open(this, pid);

    /// <summary>A pagemap of another kind than pagemap-PID.img (e.g. pagemap-shmem-SHMID.img).</summary>
    public PagemapWriter CreatePagemap(ImageFile map, uint pagesId)
    {
        Pages.IPageSink sink = PageServer is { } server ? new Pages.PageServerSink(server, map) : new Pages.PageFileSink(this, map, pagesId);
        return new(Spool is { } spool ? spool.Wrap(sink) : sink, Progress);
    }

    /// <summary>Set for a `--leave-running` dump: page data is held in memory until the tree is let go.</summary>
    public Pages.PageSpool? Spool { get; set; }

    public PagemapReader OpenPagemap(ImageFile map) => PagemapReader.Open(this, map);
}
