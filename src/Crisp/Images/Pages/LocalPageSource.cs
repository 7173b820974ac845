using Crisp.Linux;

namespace Crisp.Images.Pages;

/// <summary>Pages read from an images directory: pages-N.img through each task's pagemap, parent chain included
/// (<see cref="PagemapReader"/>: PE_PARENT runs resolve to DIR/parent's files).</summary>
public sealed class LocalPageSource(ImageDirectory dir) : IPageSource
{
    private readonly Dictionary<int, PagemapReader> _maps = [];

    /// <summary>The task's pagemap (opened once).</summary>
    public PagemapReader Pagemap(int pid)
    {
        if (!_maps.TryGetValue(pid, out var map))
        {
            if (!dir.Exists(ImageFile.Pagemap(pid)))
                throw new CrispException($"{dir.PathOf(ImageFile.Pagemap(pid))}: missing");
            _maps[pid] = map = PagemapReader.Open(dir, pid);
            map.RequireAllPages();
        }
        return map;
    }

    public void Read(int pid, ulong vaddr, Span<byte> buffer)
    {
        var map = Pagemap(pid);
        ulong end = vaddr + (ulong)buffer.Length, at = vaddr;
        foreach (var (start, length, offset, source) in map.Resolve(vaddr, end))
        {
            if (start != at)
                break;
            map.ReadStored(buffer.Slice((int)(start - vaddr), (int)length), offset, source);
            at = start + length;
        }
        if (at != end)
            throw NotStored(pid, at, end);
    }

    /// <summary>Ranges that lie back to back in one pages file are read together: as few preads as the file layout
    /// allows, straight into <paramref name="buffer"/>.</summary>
    public void Read(int pid, ReadOnlySpan<RemoteRange> ranges, Span<byte> buffer)
    {
        var map = Pagemap(pid);
        int at = 0, length = 0, source = 0;
        long offset = 0;
        foreach (var range in ranges)
        {
            if (!map.TryFind(range.Address, out var run) || !run.IsPresent || range.Address + range.Length > run.End)
                throw NotStored(pid, range.Address, range.Address + range.Length);
            long rangeOffset = run.FileOffset + (long)(range.Address - run.Vaddr);
            if (length > 0 && (run.Source != source || rangeOffset != offset + length))
            {
                ReadFilled(map, buffer.Slice(at, length), offset, source);
                at += length;
                length = 0;
            }
            if (length == 0)
                (offset, source) = (rangeOffset, run.Source);
            length += (int)range.Length;
        }
        if (length > 0)
            ReadFilled(map, buffer.Slice(at, length), offset, source);
    }

    private static void ReadFilled(PagemapReader map, Span<byte> buffer, long offset, int source)
    {
        map.ReadStored(buffer, offset, source);
        map.Progress?.Add(buffer.Length);
    }

    private CrispException NotStored(int pid, ulong from, ulong to) =>
        new($"{dir.PathOf(ImageFile.Pagemap(pid))}: pages 0x{from:x}-0x{to:x} are not stored in {dir.Path}");

    public void Dispose()
    {
        foreach (var map in _maps.Values)
            map.Dispose();
        _maps.Clear();
    }
}
