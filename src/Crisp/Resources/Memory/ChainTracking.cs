using Crisp.Dump;
using Crisp.Linux;
using Crisp.Linux.Proc;

namespace Crisp.Resources.Memory;

/// <summary>The tracking a pre-dump chain's parent left in the tree, seen before the dump seizes it (`dump -R
/// --prev-images-dir`): the tasks of the tree whose tracking userfaultfd is still theirs, how much the dump will hold
/// (the pages written since, not the whole tree: the page spool's size), and the mark that says a dump reset their
/// tracking and has not finished (<see cref="RunningCopy.TakeInChain"/>).</summary>
public sealed class ChainTracking
{
    /// <summary>In the parent images while a dump that reset their tracking runs: a dump that died there (crisp killed)
    /// leaves it, and the next dump of the chain then trusts no tracking (stores every page) — the pages written before
    /// the reset show as written nowhere else.</summary>
    public const string ResetMark = "crisp-mem-track-reset";

    private readonly string _parentDir;
    private bool _marked;

    private ChainTracking(string parentDir, List<TrackedTask> held)
    {
        _parentDir = parentDir;
        Held = held;
    }

    /// <summary>Tasks of the tree tracked by async write-protection since the parent, their tracker still held.</summary>
    public IReadOnlyList<TrackedTask> Held { get; }

    /// <summary>The chain's parent and its tracked tasks in the tree of <paramref name="treePids"/>; null when the
    /// parent cannot be read here (the dump itself then says why).</summary>
    public static ChainTracking? Find(string prevImagesDir, string imagesPath, IReadOnlyCollection<int> treePids)
    {
        string full = Path.GetFullPath(prevImagesDir, imagesPath);
        if (!Directory.Exists(full) || File.Exists(Path.Combine(full, ResetMark)))
            return null;
        Dictionary<int, TrackedTask> previous;
        try { previous = TrackFile.Read(full); }
        catch (Exception e) when (e is CrispException or IOException or UnauthorizedAccessException) { return null; }
        var held = new List<TrackedTask>();
        foreach (var t in previous.Values)
        {
            if (t.SoftDirty || !treePids.Contains(t.Pid))
                continue;
            try
            {
                if (WriteTracker.StillHeld(t.Pid, ProcStat.Read(t.Pid).StartTime, t))
                    held.Add(t);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        }
        return new ChainTracking(full, held);
    }

    /// <summary>What the dump will hold in memory: for a tracked task the pages written since the parent (in VMAs it
    /// tracks) and every page of its other private VMAs, for any other task its resident memory; a quarter more for
    /// what the tree writes until its stop.</summary>
    public long EstimatedBytes(IEnumerable<int> treePids)
    {
        long bytes = 0;
        var held = Held.ToDictionary(t => t.Pid);
        foreach (int pid in treePids)
        {
            if (!held.TryGetValue(pid, out var t))
            {
                bytes += DumpOutput.ResidentBytes(pid);
                continue;
            }
            try { bytes += WrittenBytes(t); }
            catch (Exception e) when (e is IOException or SyscallException or UnauthorizedAccessException) { bytes += DumpOutput.ResidentBytes(pid); }
        }
        return bytes + bytes / 4 + (4L << 20);
    }

    private static long WrittenBytes(TrackedTask t)
    {
        const ulong Data = Pagemap.PAGE_IS_PRESENT | Pagemap.PAGE_IS_SWAPPED;
        long bytes = 0;
        using var pagemap = Pagemap.Open(t.Pid);
        foreach (var vma in VmaCollector.Collect(t.Pid, [], _ => 0, _ => 0).Where(v => v.HasPrivatePages))
        {
            ulong written = WriteTracker.TrackedSince(vma, t, held: true) ? Pagemap.PAGE_IS_WRITTEN : 0;
            foreach (var r in pagemap.ScanRegions(vma.Start, vma.End, 0, 0, written, Data, Data))
                bytes += (long)(r.End - r.Start);
        }
        return bytes;
    }

    /// <summary>Puts <see cref="ResetMark"/> in the parent images before any tracking is reset; false when it cannot
    /// be written there (the tracking is then left as it is).</summary>
    public bool Mark(Log log)
    {
        try
        {
            File.WriteAllText(Path.Combine(_parentDir, ResetMark), $"{Environment.ProcessId}\n");
            _marked = true;
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            log.Debug($"copy while running: {e.Message}: the chain's pages are copied while the tree is frozen");
            return false;
        }
    }

    /// <summary>The dump is over (done, or failed and every reset undone): the mark goes.</summary>
    public void Unmark()
    {
        if (!_marked)
            return;
        try { File.Delete(Path.Combine(_parentDir, ResetMark)); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        _marked = false;
    }

    /// <summary>Whether this dump put the mark in <paramref name="parentDir"/> (the one it reads the chain from).</summary>
    public bool Marked(string parentDir) => _marked && Path.GetFullPath(parentDir) == _parentDir;
}
