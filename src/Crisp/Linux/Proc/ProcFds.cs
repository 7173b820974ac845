namespace Crisp.Linux.Proc;

/// <summary>An open fd of a process and what /proc/PID/fd/N links to ("/path", "pipe:[123]", "socket:[4]", "anon_inode:[eventfd]", …).</summary>
public readonly record struct FdLink(int Fd, string Target);

/// <summary>/proc/PID/fd.</summary>
public static class ProcFds
{
    /// <summary>Open fds, ascending, with readlink targets. Fds closed while listing are skipped.</summary>
    public static List<FdLink> Read(int pid)
    {
        var list = new List<FdLink>();
        string dir = Procfs.Host.Path(pid, "fd");
        foreach (var entry in Directory.EnumerateFileSystemEntries(dir))
        {
            if (!int.TryParse(Path.GetFileName(entry), out int fd))
                continue;
            string? target;
            try
            {
                target = new FileInfo(entry).LinkTarget;
            }
            catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
            {
                continue;
            }
            if (target is not null)
                list.Add(new FdLink(fd, target));
        }
        list.Sort((a, b) => a.Fd.CompareTo(b.Fd));
        return list;
    }
}
