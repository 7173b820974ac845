using Crisp.Linux;

namespace Crisp.Images.Pages;

/// <summary>Where a restore reads a task's stored pages from, by address: the checkpoint's own pages files and its
/// parent chain (<see cref="LocalPageSource"/>), or a page server over a socket (<see cref="SocketPageSource"/>,
/// CRIU's PS_IOV_GET). The restore's page fill asks it for one batch at a time; the lazy-pages daemon for the pages
/// a fault or the background push needs.</summary>
public interface IPageSource : IDisposable
{
    /// <summary>Fills <paramref name="buffer"/> (whole pages) with the pages of task <paramref name="pid"/> (its
    /// virtual pid, as the images number it) from <paramref name="vaddr"/> on; the range lies within one pagemap run.</summary>
    void Read(int pid, ulong vaddr, Span<byte> buffer);

    /// <summary>Fills <paramref name="buffer"/> with the pages of <paramref name="ranges"/>, back to back (each range
    /// within one pagemap run): a batch of the restore's page fill. A source that can read several ranges at once
    /// (adjacent in one file) does.</summary>
    void Read(int pid, ReadOnlySpan<RemoteRange> ranges, Span<byte> buffer)
    {
        int at = 0;
        foreach (var range in ranges)
        {
            Read(pid, range.Address, buffer.Slice(at, (int)range.Length));
            at += (int)range.Length;
        }
    }
}
