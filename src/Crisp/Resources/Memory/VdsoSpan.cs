namespace Crisp.Resources.Memory;

/// <summary>A run of adjacent vdso/vvar areas and where the vdso sits in it: the shape two layouts must share
/// for one to be moved onto the other, however each splits its vvar pages into VMAs.</summary>
internal readonly record struct VdsoSpan(ulong Start, ulong End, ulong? VdsoOffset, ulong? VdsoLength)
{
    public bool Contains(ulong address) => address >= Start && address < End;

    public bool SameShape(VdsoSpan other) =>
        End - Start == other.End - other.Start && VdsoOffset == other.VdsoOffset && VdsoLength == other.VdsoLength;

    /// <summary>Spans of the given areas (sorted by start), adjacent areas joined.</summary>
    public static List<VdsoSpan> Of(IEnumerable<(ulong Start, ulong End, bool IsVdso)> areas)
    {
        var spans = new List<VdsoSpan>();
        foreach (var (start, end, isVdso) in areas)
        {
            if (spans.Count > 0 && spans[^1].End == start)
            {
                var last = spans[^1];
                spans[^1] = isVdso ? last with { End = end, VdsoOffset = start - last.Start, VdsoLength = end - start } : last with { End = end };
            }
            else
                spans.Add(new VdsoSpan(start, end, isVdso ? 0 : null, isVdso ? end - start : null));
        }
        return spans;
    }
}
