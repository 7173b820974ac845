namespace Crisp.Images.Pages;

/// <summary>Where a restore reads a task's stored pages from, by address: the checkpoint's own pages files and its
/// parent chain (<see cref="LocalPageSource"/>), or a page server over a socket (<see cref="SocketPageSource"/>,
/// CRIU's PS_IOV_GET). The lazy-pages daemon asks it for the pages a fault or the background push needs.</summary>
public interface IPageSource : IDisposable
{
    /// <summary>Fills <paramref name="buffer"/> (whole pages) with the pages of task <paramref name="pid"/> (its
    /// virtual pid, as the images number it) from <paramref name="vaddr"/> on; the range lies within one pagemap run.</summary>
    void Read(int pid, ulong vaddr, Span<byte> buffer);
}
