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

    /// <summary>Fails with one line per difference unless the tree of <paramref name="before"/>'s root, read now,
    /// matches it up to <paramref name="allow"/> (the default list when null).</summary>
    public static void AssertRestored(TaskStateSnapshot before, StateAllowList? allow = null) =>
        AssertSame(before, TaskStateSnapshot.OfTree(before.Root), allow);

    public static void AssertSame(TaskStateSnapshot before, TaskStateSnapshot after, StateAllowList? allow = null)
    {
        var diffs = Between(before, after, allow);
        if (diffs.Count > 0)
            throw new XunitException($"state differs after restore ({diffs.Count}; not on the allow-list in tests/Crisp.Tests/Support/StateAllowList.cs):\n"
                + string.Join('\n', diffs));
    }
}
