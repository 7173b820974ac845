using Crisp.Images.Proto;

namespace Crisp.Images;

/// <summary>The run length of a pagemap entry in either of CRIU's spellings.</summary>
public static class PagemapEntries
{
    /// <summary>nr_pages (field 5, current CRIU, which leaves field 2 zero) when present, else compat_nr_pages.</summary>
    public static uint NrPages(pagemap_entry e, string path)
    {
        ulong n = e.HasNrPages ? e.NrPages : e.CompatNrPages;
        if (n > uint.MaxValue)
            throw new ImageFormatException(path, 0, $"a pagemap run of {n} pages at 0x{e.Vaddr:x} is longer than crisp reads");
        return (uint)n;
    }
}
