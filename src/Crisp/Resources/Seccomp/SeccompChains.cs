using Crisp.Images.Proto;
using Google.Protobuf;

namespace Crisp.Resources.Seccomp;

/// <summary>The filters of a whole dump, as CRIU's seccomp.img stores them: a flat list in which each
/// filter names the one installed before it (<c>prev</c>). A filter with the same program, flags and
/// predecessor is stored once, so chains shared by threads and prefixes inherited from a parent are
/// shared in the image too; a thread's core names the newest filter of its chain.</summary>
public sealed class SeccompChains
{
    private readonly Dictionary<(string Program, uint Flags, int Prev), int> _index = [];

    public List<seccomp_filter> Filters { get; } = [];

    /// <summary>Adds a chain given oldest first; returns the index of its newest filter.</summary>
    public int Add(IReadOnlyList<(byte[] Program, uint Flags)> chainOldestFirst)
    {
        int prev = -1;
        foreach (var (program, flags) in chainOldestFirst)
        {
            var key = (Convert.ToBase64String(program), flags, prev);
            if (!_index.TryGetValue(key, out int at))
            {
                var f = new seccomp_filter { Filter = ByteString.CopyFrom(program) };
                if (prev >= 0)
                    f.Prev = (uint)prev;
                if (flags != 0)
                    f.Flags = flags;
                at = Filters.Count;
                Filters.Add(f);
                _index[key] = at;
            }
            prev = at;
        }
        return prev;
    }

    /// <summary>The chain ending at <paramref name="newest"/>, oldest first, checked against a hostile image
    /// (indices in range, no cycles).</summary>
    public static List<seccomp_filter> Chain(IReadOnlyList<seccomp_filter> filters, uint newest)
    {
        var chain = new List<seccomp_filter>();
        long at = newest;
        while (true)
        {
            if (at < 0 || at >= filters.Count)
                throw new CrispException($"seccomp.img: filter {at} does not exist ({filters.Count} filters)");
            if (chain.Count >= filters.Count)
                throw new CrispException("seccomp.img: the chain of filters loops");
            var f = filters[(int)at];
            chain.Add(f);
            if (!f.HasPrev)
                break;
            at = f.Prev;
        }
        chain.Reverse();
        return chain;
    }
}
