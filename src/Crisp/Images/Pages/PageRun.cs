namespace Crisp.Images.Pages;

/// <summary>One pagemap run on its way to a sink: its pages follow in the batch's data when it is present.</summary>
public readonly record struct PageRun(ulong Vaddr, uint NrPages, PagemapFlags Flags)
{
    public bool IsPresent => (Flags & PagemapFlags.Present) != 0;
    public int DataBytes => IsPresent ? checked((int)NrPages * PagemapWriter.PageSize) : 0;
}
