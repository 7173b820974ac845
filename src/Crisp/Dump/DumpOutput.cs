using Crisp.Images;
using Crisp.Linux.Proc;
using Crisp.Linux;

namespace Crisp.Dump;

/// <summary>
/// The images directory of one dump, kept so that a failed dump leaves it as it was. Image files already there
/// (an earlier dump's, the manifest) are moved aside into <see cref="PreviousDir"/> first, so the new dump never
/// overwrites them; a failure removes every image file the dump wrote and moves them back, and removes the
/// directory when the dump made it and nothing else is in it (a log written there stays). A success drops them.
/// </summary>
public sealed class DumpOutput
{
    public const string PreviousDir = ".crisp-previous-dump";
    private const int ENOSPC = 28;

    private readonly string _dir;
    private readonly bool _created;
    private readonly HashSet<string> _before;
    private readonly List<string> _movedAside = [];

    private DumpOutput(string dir, bool created, HashSet<string> before) => (_dir, _created, _before) = (dir, created, before);

    /// <param name="createdByCaller">The caller made the directory for this dump (the CLI makes it before
    /// changing into it); it is removed on failure like one made here.</param>
    /// <param name="dirMode">The mode a directory made here gets (private unless --images-mode says otherwise).</param>
    public static DumpOutput Begin(string imagesDir, bool createdByCaller, UnixFileMode dirMode)
    {
        string dir = Path.GetFullPath(imagesDir);
        bool created = Security.PrivateFile.CreateDirectory(dir, dirMode) || createdByCaller;
        var before = Names(dir).ToHashSet(StringComparer.Ordinal);
        var output = new DumpOutput(dir, created, before);
        var earlier = before.Where(IsDumpFile).ToList();
        if (earlier.Count > 0)
        {
            string aside = Path.Combine(dir, PreviousDir);
            Directory.CreateDirectory(aside);
            foreach (var name in earlier)
            {
                File.Move(Path.Combine(dir, name), Path.Combine(aside, name), overwrite: true);
                output._movedAside.Add(name);
            }
        }
        return output;
    }

    /// <summary>The dump succeeded: the earlier dump's files are gone for good.</summary>
    public void Commit()
    {
        if (_movedAside.Count > 0)
            Directory.Delete(Path.Combine(_dir, PreviousDir), recursive: true);
    }

    /// <summary>The dump failed: the directory goes back to how it was. Returns the exception to throw: on a full
    /// disk one that says how much space the dump needed, else <paramref name="failure"/> itself.</summary>
    public Exception Discard(Exception failure, IReadOnlyCollection<int> treePids)
    {
        long written = 0;
        foreach (var name in Names(_dir).Where(n => !_before.Contains(n) || _movedAside.Contains(n)).Where(IsDumpFile))
        {
            string path = Path.Combine(_dir, name);
            written += new FileInfo(path).Length;
            File.Delete(path);
        }
        string aside = Path.Combine(_dir, PreviousDir);
        foreach (var name in _movedAside)
            File.Move(Path.Combine(aside, name), Path.Combine(_dir, name), overwrite: true);
        if (_movedAside.Count > 0)
            Directory.Delete(aside, recursive: true);
        // Measured now: the space the dump had, with its own files gone and the directory still there.
        var failed = IsNoSpace(failure) ? new CrispException(NoSpaceMessage(written, treePids), failure) : failure;
        if (_created && !Directory.EnumerateFileSystemEntries(_dir).Any())
            Directory.Delete(_dir);
        return failed;
    }

    private string NoSpaceMessage(long written, IReadOnlyCollection<int> treePids)
    {
        long memory = treePids.Sum(ResidentBytes);
        long needed = Math.Max(written, memory) + (1 << 20);
        string free;
        try { free = $"{Mib(new DriveInfo(_dir).AvailableFreeSpace)} MiB free there"; }
        catch (Exception e) when (e is IOException or ArgumentException or UnauthorizedAccessException) { free = "free space unknown"; }
        return $"no space left on device writing the images in {_dir}: the dump needs about {Mib(needed)} MiB there " +
            $"(the tree holds {Mib(memory)} MiB of memory to save, {Mib(written)} MiB were written before the disk filled; {free}); " +
            "the images it wrote were removed and the tree runs on";
    }

    private static long Mib(long bytes) => (bytes + (1 << 20) - 1) >> 20;   // rounded up

    /// <summary>Anonymous and shared-memory resident bytes of a task (what its pages images hold), 0 when gone.</summary>
    public static long ResidentBytes(int pid)
    {
        try
        {
            long kib = 0;
            foreach (var line in File.ReadLines(Procfs.Host.Path(pid, "status")))
                if (line.StartsWith("RssAnon:", StringComparison.Ordinal) || line.StartsWith("RssShmem:", StringComparison.Ordinal))
                    kib += long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], System.Globalization.CultureInfo.InvariantCulture);
            return kib * 1024;
        }
        catch (IOException)
        {
            return 0;
        }
    }

    private static bool IsNoSpace(Exception? e)
    {
        for (; e is not null; e = e.InnerException)
            if (e is SyscallException { Errno: ENOSPC } || e is IOException { HResult: ENOSPC } || e.Message.Contains("No space left on device", StringComparison.Ordinal))
                return true;
        return false;
    }

    private static bool IsDumpFile(string name) => ImageManifest.IsImageName(name) || ImageManifest.IsManifestName(name);

    private static IEnumerable<string> Names(string dir) =>
        Directory.EnumerateFiles(dir).Select(Path.GetFileName).OfType<string>();
}
