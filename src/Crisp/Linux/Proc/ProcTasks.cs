namespace Crisp.Linux.Proc;

/// <summary>Threads (/proc/PID/task) and children (/proc/PID/task/TID/children).</summary>
public static class ProcTasks
{
    /// <summary>Thread ids of <paramref name="pid"/>, ascending.</summary>
    public static int[] Threads(int pid)
    {
        var tids = new List<int>();
        foreach (var dir in Directory.EnumerateDirectories(Procfs.Host.Path(pid, "task")))
            if (int.TryParse(Path.GetFileName(dir), out int tid))
                tids.Add(tid);
        tids.Sort();
        return tids.ToArray();
    }

    /// <summary>Children created by thread <paramref name="tid"/> (needs CONFIG_PROC_CHILDREN).</summary>
    public static int[] Children(int pid, int tid) => ParseChildren(Procfs.Host.ReadText(pid, $"task/{tid}/children"));

    /// <summary>Children of every thread of <paramref name="pid"/>, ascending.</summary>
    public static int[] AllChildren(int pid)
    {
        var all = new List<int>();
        foreach (int tid in Threads(pid))
        {
            try
            {
                all.AddRange(Children(pid, tid));
            }
            catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
            {
                // the thread exited while we walked
            }
        }
        all.Sort();
        return all.ToArray();
    }

    /// <summary>"TID (state S in WCHAN)" for a message about a thread that does not do what was asked of it
    /// (/proc/TID works for any thread id).</summary>
    public static string Describe(int tid)
    {
        try
        {
            string stat = Procfs.Host.ReadText(tid, "stat");
            char state = stat[stat.LastIndexOf(')') + 2];
            string wchan = Procfs.Host.ReadText(tid, "wchan").Trim();
            string tracer = Procfs.Host.ReadText(tid, "status").Split('\n').FirstOrDefault(l => l.StartsWith("TracerPid:", StringComparison.Ordinal))?[10..].Trim() ?? "?";
            return $"{tid} (state {state}{(wchan is "" or "0" ? "" : " in " + wchan)}, traced by {tracer})";
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or IndexOutOfRangeException)
        {
            return $"{tid} (gone)";
        }
    }

    /// <summary>"123 456 " → [123, 456].</summary>
    public static int[] ParseChildren(string text)
        => Array.ConvertAll(text.Split((char[])[' ', '\n'], StringSplitOptions.RemoveEmptyEntries), int.Parse);
}
