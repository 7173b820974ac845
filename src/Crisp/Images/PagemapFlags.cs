namespace Crisp.Images;

/// <summary>pagemap_entry.flags bits, as CRIU's pagemap code sets them.</summary>
[Flags]
public enum PagemapFlags : uint
{
    None = 0,
    /// <summary>Pages are in the parent checkpoint (incremental dumps).</summary>
    Parent = 1 << 0,
    /// <summary>Pages are served lazily (userfaultfd), not stored here.</summary>
    Lazy = 1 << 1,
    /// <summary>Pages are stored in pages-N.img, in pagemap order.</summary>
    Present = 1 << 2,
}
