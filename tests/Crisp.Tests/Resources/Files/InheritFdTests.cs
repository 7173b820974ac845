using System.Text;
using Crisp.Dump;
using Crisp.Linux;
using Crisp.Resources.Files;
using Crisp.Restore;
using Crisp.Tests.Integration;
using Crisp.Tests.Support;

namespace Crisp.Tests.Resources.Files;

/// <summary>--inherit-fd (CRIU's, what container runtimes pass for a container's stdio): a workload's stdout is
/// a pipe whose reader is the test, outside the tree. Restored with `pipe:[INO]` of that pipe inherited from a
/// new pipe of the test's, the workload's fd 1 is the new pipe (same description, by inode) and what it writes
/// after the restore arrives there, while the old pipe has no writer left; a bad key or fd is one line.</summary>
public class InheritFdTests
{
    private const int SIGKILL = 9, SIGUSR1 = 10, EAGAIN = 11;

    [RootFact]
    public void AStdoutPipeHeldOutsideTheTreeBecomesTheCallersPipe()
    {
        using var dir = new Live.TempDir();
        string exe = Support.Workloads.Build("pipe_writer");
        var (oldRead, oldWrite) = FdOps.Pipe();
        int pid = Spawn.Start(exe, [exe], new SpawnOptions
        {
            NewSession = true,
            Fds = [(oldWrite.Fd, 1)],
            Opens = [(0, "/dev/null", FileIo.O_RDONLY, 0), (2, "/dev/null", FileIo.O_WRONLY, 0)],
        });
        oldWrite.Dispose();
        bool alive = true;
        try
        {
            FdOps.SetStatusFlags(oldRead.Fd, FileIo.O_NONBLOCK);
            Assert.Equal($"ready {pid}\n", ReadLine(oldRead.Fd));
            ulong oldIno = FdOps.Stat(oldRead.Fd).Ino;
            var state = TaskStateSnapshot.OfQuietTree(pid);
            new Dumper(new DumpOptions { RootPid = pid, ImagesDir = dir.Images }, Log.Null).Run();
            try { Spawn.Reap(pid); } catch (SyscallException) { }
            alive = false;
            Live.WaitPidsFree(Live.CheckpointPids(dir.Images));

            var (newRead, newWrite) = FdOps.Pipe();
            using (newRead)
            {
                var wrongFd = Assert.Throws<CrispException>(() => new Restorer(new RestoreOptions
                { ImagesDir = dir.Images, Detached = true, InheritFds = [(987, $"pipe:[{oldIno}]")] }, Log.Null).Run());
                Assert.Contains("--inherit-fd fd[987]", wrongFd.Message);
                Assert.False(Directory.Exists($"/proc/{pid}"), "a failed restore leaves nothing behind");

                var tree = new Restorer(new RestoreOptions
                { ImagesDir = dir.Images, Detached = true, InheritFds = [(newWrite.Fd, $"pipe:[{oldIno}]")] }, Log.Null).Run();
                alive = true;
                newWrite.Dispose();
                Assert.Equal(pid, tree.RootPid);
                Assert.Equal($"pipe:[{FdOps.Stat(newRead.Fd).Ino}]", new FileInfo($"/proc/{pid}/fd/1").LinkTarget);
                StateDiff.AssertRestored(state);   // fd 1 is another pipe now, but one pipe for one: its label is the same

                FdOps.SetStatusFlags(newRead.Fd, FileIo.O_NONBLOCK);
                for (int n = 1; n <= 3; n++)
                {
                    Crisp.Linux.Signals.Kill(pid, SIGUSR1);
                    Assert.Equal($"line {n}\n", ReadLine(newRead.Fd));
                }
                Assert.Equal(0, Live.ExitCodeWithin(tree));
                alive = false;
                Assert.Equal("", ReadLine(oldRead.Fd));   // end of file: the old pipe's writer is gone for good
            }
        }
        finally
        {
            if (alive)
                Live.KillAll([pid]);
            oldRead.Dispose();
        }
    }

    /// <summary>One line from a non-blocking pipe end, waiting at most 20 s; "" at end of file.</summary>
    private static string ReadLine(int fd)
    {
        var line = new StringBuilder();
        var one = new byte[1];
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (line.Length == 0 || line[^1] != '\n')
        {
            try
            {
                if (FileIo.Read(fd, one) == 0)
                    return line.ToString();
                line.Append((char)one[0]);
            }
            catch (SyscallException e) when (e.Errno == EAGAIN)
            {
                Assert.True(DateTime.UtcNow < deadline, $"no line on the pipe (so far '{line}')");
                Thread.Sleep(10);
            }
        }
        return line.ToString();
    }
}
