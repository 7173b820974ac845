using Xunit.Sdk;

namespace Crisp.Tests.Support;

/// <summary>One fact that differs between two snapshots; null on a side where it is absent.</summary>
internal sealed record StateDifference(StateKey Key, string? Before, string? After)
{
    public override string ToString() =>
        $"{Key.Task}  {Key.File}  {(Key.Field.Length > 0 ? Key.Field : "-")}: {Before ?? "(absent)"} → {After ?? "(absent)"}";
}

/// <summary>Compares a snapshot taken before a dump with one taken after the restore: every difference that no
/// rule of the allow-list covers is reported, one line each.</summary>
internal static class StateDiff
{
    public static List<StateDifference> Between(TaskStateSnapshot before, TaskStateSnapshot after, StateAllowList? allow = null)
    {
        allow ??= StateAllowList.Default;
        var keys = new SortedSet<StateKey>(before.Facts.Keys);
        keys.UnionWith(after.Facts.Keys);
        var list = new List<StateDifference>();
        foreach (var key in keys)
        {
            string? b = before.Facts.GetValueOrDefault(key), a = after.Facts.GetValueOrDefault(key);
            if (b != a && allow.Allowing(key) is null)
                list.Add(new StateDifference(key, b, a));
        }
        return list;
    }

    /// <summary>How long a restored tree may take to settle: released, each task still has to return through
    /// sigreturn into what it was doing (a restarted sigsuspend puts its temporary mask back only once it runs).</summary>
    private static readonly TimeSpan Settle = TimeSpan.FromSeconds(10);

    /// <summary>Fails with one line per difference unless the tree of <paramref name="before"/>'s root, read now,
    /// matches it up to <paramref name="allow"/> (the default list when null); <paramref name="when"/> names the
    /// moment in the message. Differences are read again until none is left or <see cref="Settle"/> has passed:
    /// what is reported is the state the tree stays in, not one it passes through on its way back.</summary>
    public static void AssertRestored(TaskStateSnapshot before, StateAllowList? allow = null, string when = "after restore") =>
        AssertSame(before, Settled(before, allow), allow, when);

    /// <summary>A snapshot of <paramref name="before"/>'s tree once it differs from it in nothing
    /// <paramref name="allow"/> does not cover, or the last one read when <see cref="Settle"/> has passed.</summary>
    public static TaskStateSnapshot Settled(TaskStateSnapshot before, StateAllowList? allow = null)
    {
        var deadline = DateTime.UtcNow + Settle;
        var after = TaskStateSnapshot.OfTree(before.Root);
        while (Between(before, after, allow).Count > 0 && DateTime.UtcNow < deadline)
        {
            Thread.Sleep(50);
            after = TaskStateSnapshot.OfTree(before.Root);
        }
        return after;
    }

    public static void AssertSame(TaskStateSnapshot before, TaskStateSnapshot after, StateAllowList? allow = null, string when = "after restore")
    {
        var diffs = Between(before, after, allow);
        if (diffs.Count > 0)
            throw new XunitException($"state differs {when} ({diffs.Count}; not on the allow-list in tests/Crisp.Tests/Support/StateAllowList.cs):\n"
                + string.Join('\n', diffs));
    }
}
