using System.Runtime.InteropServices;

namespace Crisp.Tests.Support;

/// <summary>A test that needs root (ptrace of other uids, cgroups, clone3 set_tid). Skips with a reason
/// otherwise; tests/run fails when any such test is skipped while running as root.</summary>
public sealed partial class RootFactAttribute : FactAttribute
{
    public const string Reason = "needs root";

    public RootFactAttribute()
    {
        if (geteuid() != 0)
            Skip = Reason;
    }

    [LibraryImport("libc")]
    private static partial uint geteuid();
}
