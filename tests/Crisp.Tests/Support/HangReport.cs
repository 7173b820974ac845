namespace Crisp.Tests.Support;

/// <summary>What a hung command and the processes it waits on are doing, read from /proc before it is killed: each
/// thread's state, wait channel, syscall and kernel stack. CI keeps only the output's tail, so a hang must explain
/// itself in the failure message.</summary>
public static class HangReport
{
    /// <summary>Every process below <paramref name="root"/> (and <paramref name="root"/>), plus <paramref name="also"/>.</summary>
    public static string Describe(int root, IEnumerable<int>? also = null)
    {
        var parents = new Dictionary<int, int>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (int.TryParse(Path.GetFileName(dir), out int pid) && Read($"{dir}/stat") is { } stat && stat.LastIndexOf(')') is > 0 and int close)
            {
                var fields = stat[(close + 2)..].Split(' ');
                if (fields.Length > 1 && int.TryParse(fields[1], out int ppid))
                    parents[pid] = ppid;
            }
        }
        var pids = new SortedSet<int>(also ?? []) { root };
        bool grew = true;
        while (grew)
        {
            grew = false;
            foreach (var (pid, ppid) in parents)
                if (pids.Contains(ppid) && pids.Add(pid))
                    grew = true;
        }
        var lines = new List<string>();
        foreach (int pid in pids)
        {
            string cmd = (Read($"/proc/{pid}/cmdline") ?? "").Replace('\0', ' ').Trim();
            lines.Add($"process {pid} (parent {parents.GetValueOrDefault(pid)}): {(cmd.Length > 160 ? cmd[..160] : cmd)}");
            IEnumerable<string> tasks;
            try { tasks = Directory.EnumerateDirectories($"/proc/{pid}/task").ToList(); }
            catch (IOException) { lines.Add("  (gone)"); continue; }
            // Go's runtime threads say nothing: a runtime's main thread only.
            foreach (var t in tasks.Take(cmd.StartsWith("runc") ? 1 : 8))
            {
                string state = Read($"{t}/stat") is { } s && s.LastIndexOf(')') is > 0 and int c ? s[(c + 2)..].Split(' ')[0] : "?";
                string stack = string.Join(" < ", (Read($"{t}/stack") ?? "").Split('\n', StringSplitOptions.RemoveEmptyEntries)
                    .Select(l => l.Split(' ').Last().Split('+')[0]).Take(6));
                lines.Add($"  {Path.GetFileName(t)} {Read($"{t}/comm")?.Trim()} {state} wchan={Read($"{t}/wchan")} syscall={Read($"{t}/syscall")?.Split(' ')[0].Trim()} tracer={TracerOf(t)} [{stack}]");
            }
        }
        return string.Join('\n', lines);
    }

    private static string TracerOf(string task) =>
        (Read($"{task}/status") ?? "").Split('\n').FirstOrDefault(l => l.StartsWith("TracerPid:"))?.Split(':')[1].Trim() ?? "?";

    private static string? Read(string path)
    {
        try { return File.ReadAllText(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return null; }
    }
}
