using System.Runtime.InteropServices;

namespace Crisp.Tests.Support;

/// <summary>The theory form of <see cref="Support.RootFactAttribute"/>: skipped unless root.</summary>
public sealed partial class RootTheoryAttribute : TheoryAttribute
{
    public RootTheoryAttribute()
    {
        if (geteuid() != 0)
            Skip = Support.RootFactAttribute.Reason;
    }

    [LibraryImport("libc")]
    private static partial uint geteuid();
}
