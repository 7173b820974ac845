using System.Text.RegularExpressions;

namespace Crisp.Tests.Support;

/// <summary>Names the inodes of anonymous kernel objects (pipes, sockets, memfds, deleted files, shared anonymous
/// memory) "#1", "#2", … in the order a snapshot first meets them. A restore creates new objects with new inode
/// numbers, so the numbers cannot be compared, but which fds and mappings share one object can: both snapshots
/// walk tasks and fds in the same order, so the same sharing gives the same labels.</summary>
internal sealed partial class InodeLabels
{
    private readonly Dictionary<ulong, string> _labels = [];

    /// <summary>The label of <paramref name="inode"/>, a new one if it has none yet.</summary>
    public string Label(ulong inode)
    {
        if (!_labels.TryGetValue(inode, out var label))
            _labels[inode] = label = $"#{_labels.Count + 1}";
        return label;
    }

    /// <summary>The label of <paramref name="inode"/> if it was labelled, else the number itself (a real file).</summary>
    public string LabelIfKnown(ulong inode) => _labels.TryGetValue(inode, out var label) ? label : inode.ToString();

    /// <summary>An fd link target with the inode of an anonymous object ("pipe:[123]", "socket:[45]") labelled;
    /// <paramref name="inode"/> is that number (0 for paths and "anon_inode:[eventfd]", which carry none).</summary>
    public string Target(string target, out ulong inode)
    {
        inode = 0;
        var m = NumberedObject().Match(target);
        if (!m.Success)
            return target;
        inode = ulong.Parse(m.Groups[2].Value);
        return $"{m.Groups[1].Value}:[{Label(inode)}]";
    }

    [GeneratedRegex(@"^([a-z_]+):\[(\d+)\]$")]
    private static partial Regex NumberedObject();
}
