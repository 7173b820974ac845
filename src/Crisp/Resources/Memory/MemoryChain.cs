using Crisp.Dump;
using Crisp.Images;

namespace Crisp.Resources.Memory;

/// <summary>A dump's place in a pre-dump chain (dump-wide state of the memory stage): the parent images
/// (--prev-images-dir, linked as DIR/parent), the tracking the parent left in each task, and the tracking this
/// dump leaves for the next one.</summary>
public sealed class MemoryChain
{
    public const string ParentLink = "parent";

    private bool _loaded;
    private readonly HashSet<(int Pid, int Fd)> _trackerFds = [];

    public ImageDirectory? Parent { get; private set; }
    public Dictionary<int, TrackedTask> Previous { get; private set; } = [];
    public List<TrackedTask> Armed { get; } = [];

    /// <summary>The parent holds <see cref="ChainTracking.ResetMark"/> that this dump did not put there: a dump reset
    /// its tracking and never finished, so no page's tracking is trusted (every page is stored).</summary>
    public bool ResetUnfinished { get; private set; }

    /// <summary>Opens the parent once: a missing or foreign directory fails the dump before a page is stored.</summary>
    public void Load(DumpContext ctx)
    {
        if (_loaded)
            return;
        _loaded = true;
        if (ctx.Options.PrevImagesDir is not { } prev)
            return;
        string full = Path.GetFullPath(prev, ctx.Images.Path);
        if (!Directory.Exists(full))
            throw new CrispException($"--prev-images-dir {prev}: {full} is not a directory");
        var dir = ImageDirectory.Open(full, ctx.Images.Key);
        if (!dir.Exists(ImageFile.Inventory))
            throw new CrispException($"--prev-images-dir {prev}: {full} holds no checkpoint (inventory.img is missing)");
        if (ctx.Options.AutoDedup)
            AutoDedup.Check(ctx.Options, dir);
        Parent = dir;
        Previous = TrackFile.Read(full);
        if (File.Exists(Path.Combine(full, ChainTracking.ResetMark)) && ctx.Memory.RunningCopy?.Chain?.Marked(full) != true)
        {
            ResetUnfinished = true;
            ctx.Log.Info($"--prev-images-dir {prev}: a dump that reset its tracking did not finish ({ChainTracking.ResetMark} is there): every page is stored");
        }
        foreach (var t in Previous.Values)
            _trackerFds.Add((t.Pid, t.Fd));
    }

    /// <summary>The tracking userfaultfd crisp keeps in a task: not the program's, never in the images.</summary>
    public bool IsTrackerFd(int pid, int fd) => _trackerFds.Contains((pid, fd));

    public void NoteTracker(TrackedTask t) => _trackerFds.Add((t.Pid, t.Fd));

    /// <summary>After every task: DIR/parent (as CRIU: the path as given) and crisp-mem-track for the next dump.</summary>
    public void Finish(DumpContext ctx)
    {
        if (ctx.Options.PrevImagesDir is { } prev)
        {
            string link = Path.Combine(ctx.Images.Path, ParentLink);
            if (File.Exists(link) || Directory.Exists(link) || new FileInfo(link).LinkTarget is not null)
                File.Delete(link);
            File.CreateSymbolicLink(link, prev);
        }
        string track = Path.Combine(ctx.Images.Path, TrackFile.Name);
        if (Armed.Count > 0)
            TrackFile.Write(ctx.Images.Path, Armed, ctx.Images.Modes);
        else if (File.Exists(track))
            File.Delete(track);
    }
}
