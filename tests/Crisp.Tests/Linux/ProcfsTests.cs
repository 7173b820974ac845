using Crisp.Linux.Proc;
using Crisp.Tests.Integration;
using Crisp.Tests.Support;

namespace Crisp.Tests.Linux;

/// <summary>Procfs reads through its own root: a procfs mounted somewhere else (as a container's is) answers
/// for the same task as /proc does.</summary>
public sealed class ProcfsTests
{
    [Fact]
    public void BuildsPathsUnderItsRoot()
    {
        var procfs = new Procfs("/mnt/ct/proc");
        Assert.Equal("/mnt/ct/proc/42/maps", procfs.Path(42, "maps"));
        Assert.Equal("/mnt/ct/proc/42/task/43/status", procfs.Path(42, 43, "status"));
        Assert.Equal("/mnt/ct/proc/self/fd/3", procfs.Path(0, "fd/3"));
        Assert.Equal("/proc/7", Procfs.Host.Path(7));
    }

    [RootFact]
    public void ReadsAProcfsMountedElsewhere()
    {
        string dir = Directory.CreateTempSubdirectory("crisp-procfs-").FullName;
        try
        {
            var mount = Live.RunProcess("/usr/bin/mount", TimeSpan.FromSeconds(10), null, "-t", "proc", "proc", dir);
            Assert.True(mount.ExitCode == 0, $"mount -t proc: {mount.Stderr}");
            try
            {
                var other = new Procfs(dir);
                int pid = Environment.ProcessId;
                Assert.True(other.Exists(pid));
                Assert.Equal(ProcStatus.Read(pid).Fields["Tgid"], ProcStatus.Parse(other.ReadText(pid, "status")).Fields["Tgid"]);
                Assert.Equal(Procfs.Host.ReadLines(pid, "cmdline").First(), other.ReadLines(pid, "cmdline").First());
            }
            finally
            {
                Live.RunProcess("/usr/bin/umount", TimeSpan.FromSeconds(10), null, "-l", dir);
            }
        }
        finally
        {
            Directory.Delete(dir);
        }
    }
}
