namespace Crisp.Linux.Proc;

/// <summary>One procfs mount, by its root: every per-process path crisp uses comes from here rather than from
/// "/proc/{pid}" strings, so that a procfs of another pid namespace (a container's, mounted elsewhere) can
/// be read the same way. <see cref="Host"/> is the one crisp runs under; pid 0 means "self" throughout.</summary>
public sealed class Procfs(string root)
{
    /// <summary>The procfs at /proc (crisp's own pid namespace).</summary>
    public static Procfs Host { get; } = new("/proc");

    public string Root { get; } = root;

    /// <summary>A file or directory at the root (e.g. "meminfo", "sys/kernel/osrelease").</summary>
    public string Path(string name) => $"{Root}/{name}";

    /// <summary>The directory of process <paramref name="pid"/> (0: self).</summary>
    public string Path(int pid) => pid == 0 ? $"{Root}/self" : $"{Root}/{pid}";

    /// <summary>"PID/name" (0: self); <paramref name="name"/> may go deeper ("fd/3", "ns/net", "root/etc").</summary>
    public string Path(int pid, string name) => $"{Path(pid)}/{name}";

    /// <summary>"PID/task/TID/name": one thread's file.</summary>
    public string Path(int pid, int tid, string name) => $"{Path(pid)}/task/{tid}/{name}";

    /// <summary>Process <paramref name="pid"/> exists (its directory is there, zombies included).</summary>
    public bool Exists(int pid) => Directory.Exists(Path(pid));

    /// <summary>A per-process file as one string (see <see cref="ProcFiles.ReadText(string)"/>).</summary>
    public string ReadText(int pid, string name) => ProcFiles.ReadText(Path(pid, name));

    /// <summary>The non-empty lines of a per-process file, read as they are parsed: maps and smaps of a task
    /// with many VMAs run to megabytes, which crisp should not hold as one string (issue 24).</summary>
    public IEnumerable<string> ReadLines(int pid, string name)
    {
        // A plain iterator, not LINQ's Where: a Select on LINQ's own iterators is a generic virtual call, which the
        // native binary resolves through its type loader the first time (~2 ms of a small dump, first use included).
        foreach (var line in File.ReadLines(Path(pid, name)))
            if (line.Length > 0)
                yield return line;
    }

    public override string ToString() => Root;
}
