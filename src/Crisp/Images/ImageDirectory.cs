using Crisp.Security;

namespace Crisp.Images;

/// <summary>A directory of CRIU-format images (one checkpoint).</summary>
public sealed class ImageDirectory
{
    private ImageDirectory(string path, ImageModes modes, Security.Encryption.PagesKey? pagesKey)
    {
        Path = System.IO.Path.GetFullPath(path);
        Modes = modes;
        PagesKey = pagesKey;
    }

    public string Path { get; }

    /// <summary>Where page writers and readers count the page bytes they move (a dump's or restore's progress).</summary>
    public ProgressMeter? Progress { get; set; }

    /// <summary>The modes files written here get (private unless --images-mode says otherwise).</summary>
    public ImageModes Modes { get; }

    /// <summary>--encrypt-key: pages-*.img are written encrypted with it and read through it; null: plain.</summary>
    public Security.Encryption.PagesKey? PagesKey { get; }

    /// <summary>Opens an existing directory.</summary>
    public static ImageDirectory Open(string path, Security.Encryption.PagesKey? pagesKey = null, bool verifyOnOpen = false)
    {
        if (!Directory.Exists(path))
            throw new DirectoryNotFoundException($"{path}: image directory not found");
        return new ImageDirectory(path, ImageModes.Private, pagesKey) { VerifyOnOpen = verifyOnOpen };
    }

    /// <summary>Opens a directory for writing, creating it when missing (0700 unless <paramref name="modes"/>
    /// say otherwise; an existing one keeps its mode).</summary>
    public static ImageDirectory Create(string path, ImageModes? modes = null, Security.Encryption.PagesKey? pagesKey = null)
    {
        modes ??= ImageModes.Private;
        PrivateFile.CreateDirectory(path, modes.Directory);
        return new ImageDirectory(path, modes, pagesKey);
    }

    /// <summary>A new pages-N.img: encrypted as it is written when the directory has a pages key, and hashed for
    /// the manifest as it goes (what reaches the disk, ciphertext included). Unbuffered: page data comes in whole
    /// batches (no per-file buffer to allocate for each task's pages).</summary>
    public Stream CreatePages(uint pagesId)
    {
        var file = ImageFile.Pages(pagesId);
        Stream stream = CreateFile(file, 0);
        stream = new Manifest.HashingStream(stream, file.FileName, Written);
        return PagesKey is { } key ? new Security.Encryption.EncryptingPagesStream(stream, key) : stream;
    }

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
    public Security.Encryption.PagesFile OpenPages(string path)
    {
        if (VerifyOnOpen)
            ImageManifest.VerifyFile(path, Pending);
        return Security.Encryption.PagesFile.Open(path, PagesKey, Pending?.For(path));
    }

    /// <summary>A parent checkpoint read through a pre-dump chain: each file is checked against the parent's own
    /// manifest when it is opened (a pages file as it streams when <see cref="Pending"/> is set).</summary>
    public bool VerifyOnOpen { get; init; }

    /// <summary>A new raw file in the directory with the directory's file mode.</summary>
    public FileStream CreateFile(ImageFile file, int bufferSize) => PrivateFile.Create(PathOf(file), Modes.File, bufferSize);

    public string PathOf(ImageFile file) => System.IO.Path.Combine(Path, file.FileName);

    public bool Exists(ImageFile file) => File.Exists(PathOf(file));

    public ImageReader OpenReader(ImageFile file) => ImageReader.Open(PathOf(file), file.Kind);

    public ImageWriter CreateWriter(ImageFile file) => ImageWriter.Create(PathOf(file), file.Kind, Modes.File);

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
        Directory.EnumerateFiles(Path)
            .Select(System.IO.Path.GetFileName)
            .OfType<string>()
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
