using Crisp.Linux;
using Crisp.Resources.Memory;

namespace Crisp.Tests.Resources.Memory;

/// <summary>Written pages of this process between two PROT_NONE guard pages: a VMA of their own, as smaps shows it.</summary>
internal sealed class GuardedPages : IDisposable
{
    public const ulong Page = 4096;
    private readonly nint _at;
    private readonly int _pages;

    public ulong Start { get; }
    public DumpedVma Vma { get; }

    public GuardedPages(int pages)
    {
        _pages = pages;
        _at = Mman.Map(0, (ulong)(pages + 2) * Page, Mman.PROT_NONE, Mman.MAP_PRIVATE | Mman.MAP_ANONYMOUS);
        Start = (ulong)_at + Page;
        Mman.Protect((nint)Start, (ulong)pages * Page, Mman.PROT_READ | Mman.PROT_WRITE);
        unsafe
        {
            for (ulong p = 0; p < (ulong)pages; p++)
                *(byte*)(Start + p * Page) = 1;
        }
        Vma = VmaCollector.Collect(Environment.ProcessId, [], _ => 0, _ => 0).Single(v => v.Start == Start);
    }

    public void Dispose() => Mman.Unmap(_at, (ulong)(_pages + 2) * Page);
}
