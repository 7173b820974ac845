using System.Text.RegularExpressions;

namespace Crisp.Tests.Support;

/// <summary>/proc/PID/maps as text fit for before/after comparisons. The kernel pads the path column to a
/// fixed width after the inode, so a different inode (a restored shmem object, a new pipe) also shifts the
/// padding by its digit count; runs of blanks are therefore collapsed to one.</summary>
internal static partial class MapsText
{
    /// <summary>The maps with blanks collapsed; with <paramref name="blankSharedAnon"/> the inode of shared
    /// anonymous memory (/dev/zero (deleted)) becomes SHMEM: a restored shmem object is a new one, as with CRIU.</summary>
    public static string Normalized(int pid, bool blankSharedAnon = true) => Normalize(File.ReadAllText($"/proc/{pid}/maps"), blankSharedAnon);

    public static string Normalize(string maps, bool blankSharedAnon = true)
    {
        string text = Blanks().Replace(maps, " ");
        return blankSharedAnon ? SharedAnonInode().Replace(text, "$1 SHMEM$2") : text;
    }

    [GeneratedRegex(@"[ \t]+")]
    private static partial Regex Blanks();

    [GeneratedRegex(@"^(\S+ \S+s \S+ \S+) \d+( /dev/zero \(deleted\))$", RegexOptions.Multiline)]
    private static partial Regex SharedAnonInode();
}
