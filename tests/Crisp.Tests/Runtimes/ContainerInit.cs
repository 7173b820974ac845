using Crisp.Tests.Hardened;

namespace Crisp.Tests.Runtimes;

/// <summary>A container init's credentials and seccomp state as the host sees them: the hardened status lines and
/// its filter chain (program bytes and flags, PTRACE_SECCOMP_GET_FILTER), to hold against the restored init.</summary>
internal sealed record ContainerInit(Dictionary<string, string> Status, List<(string Program, ulong Flags)> Filters)
{
    public static ContainerInit Of(int pid) => new(Bench.Status(pid, pid), Bench.Filters(pid, pid));

    /// <summary>A hardened init: uid 1000, no_new_privs, seccomp filtering with at least one filter.</summary>
    public ContainerInit AssertHardened()
    {
        Assert.Equal("2", Status["Seccomp"]);
        Assert.Equal("1", Status["NoNewPrivs"]);
        Assert.StartsWith("1000", Status["Uid"]);
        Assert.Equal("0000000000000000", Status["CapBnd"]);
        Assert.NotEmpty(Filters);
        return this;
    }

    /// <summary>The init at <paramref name="pid"/> has the same status lines and byte-identical filters.</summary>
    public void AssertSameIn(int pid)
    {
        var now = Of(pid);
        foreach (var key in Bench.StatusKeys)
            Assert.True(Status[key] == now.Status[key], $"{key} was '{Status[key]}', now '{now.Status[key]}'");
        Assert.Equal(Filters.Count, now.Filters.Count);
        for (int i = 0; i < Filters.Count; i++)
            Assert.True(Filters[i] == now.Filters[i], $"filter {i} differs after restore");
    }
}
