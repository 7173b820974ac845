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
            throw new CrispException($"{dir.PathOf(ImageFile.Pagemap(pid))}: pages 0x{at:x}-0x{end:x} are not stored in {dir.Path}");
    }

    public void Dispose()
    {
        foreach (var map in _maps.Values)
            map.Dispose();
        _maps.Clear();
    }
}
