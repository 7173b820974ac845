namespace Crisp.Tests.Support;

/// <summary>Where one fact of a <see cref="TaskStateSnapshot"/> comes from: the task ("PID", or "PID/TID" for a
/// thread other than the leader), the /proc file (or a name for a syscall's answer) and the field in it.</summary>
internal readonly record struct StateKey(string Task, string File, string Field) : IComparable<StateKey>
{
    /// <summary>Tasks in numeric order (PID, then TID), then file and field as text.</summary>
    public int CompareTo(StateKey other)
    {
        int c = TaskOrder(Task).CompareTo(TaskOrder(other.Task));
        if (c == 0) c = string.CompareOrdinal(Task, other.Task);
        if (c == 0) c = string.CompareOrdinal(File, other.File);
        return c != 0 ? c : string.CompareOrdinal(Field, other.Field);
    }

    private static (long, long) TaskOrder(string task)
    {
        var parts = task.Split('/');
        long pid = long.TryParse(parts[0], out var p) ? p : -1;
        long tid = parts.Length > 1 && long.TryParse(parts[1], out var t) ? t : 0;
        return (pid, tid);
    }

    public override string ToString() => $"{Task}  {File}  {Field}";
}
