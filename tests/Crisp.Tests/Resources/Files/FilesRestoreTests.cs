using System.Text;
using Crisp.Compel;
using Crisp.Compel.Puppets;
using Crisp.Images;
using Crisp.Linux;
using Crisp.Linux.Proc;
using Crisp.Resources.Files;
using Crisp.Resources.Fs;
using Crisp.Restore;
using Crisp.Tests.Support;

namespace Crisp.Tests.Resources.Files;

/// <summary>Files and Fs restored into blank puppets from a real dump of files_basic (no Memory stage
/// needed): the stages are called directly, one puppet per dumped task.</summary>
public class FilesRestoreTests
{
    [RootFact]
    public void RestoresFdsPipeDataCwdAndUmaskIntoPuppets()
    {
        string dir = FilesDumpTests.NewImagesDir();
        int workloadPid, childPid;
        string workDir;
        using (var w = new FilesWorkload())
        {
            FilesDumpTests.DumpLeavingRunning(w.Pid, dir);
            (workloadPid, childPid, workDir) = (w.Pid, w.Child, w.Dir);
            Directory.CreateDirectory(workDir + ".keep");
            foreach (var f in Directory.GetFiles(workDir))
                File.Copy(f, Path.Combine(workDir + ".keep", Path.GetFileName(f)));
        }
        // The workload removed nothing, but Dispose deleted its dir: put the files back.
        Directory.Move(workDir + ".keep", workDir);

        using var tracer = new Tracer();
        var seizer = new Seizer(tracer);
        var images = ImageDirectory.Open(dir);
        var ctx = new RestoreContext(new RestoreOptions { ImagesDir = dir }, Log.Null, images, tracer, seizer,
            FaultInjection.None, CheckpointLoader.ReadInventory(images));
        ctx.Tasks.AddRange(CheckpointLoader.ReadTree(images));
        IRestoreStage files = new FilesRestore(), fs = new FsRestore();
        try
        {
            files.Prepare(ctx);
            foreach (var task in ctx.Tasks)
            {
                task.Puppet = Puppet.Spawn(seizer);
                files.Restore(ctx, task);
                fs.Restore(ctx, task);
            }
            ctx.Dispose();   // crisp's copies of the descriptions closed (the context owns them)

            int p = ctx.Tasks.Single(t => t.Pid == workloadPid).Puppet.Pid;
            int c = ctx.Tasks.Single(t => t.Pid == childPid).Puppet.Pid;
            Assert.Equal(Enumerable.Range(0, 12), ProcFds.Read(p).Select(f => f.Fd));
            var links = ProcFds.Read(p).ToDictionary(f => f.Fd, f => f.Target);
            Assert.Equal($"{workDir}/rw.dat", links[3]);
            Assert.Equal("/dev/null", links[5]);
            Assert.Equal(1234, FdInfo.Read(p, 3).Pos);
            Assert.Equal(FileIo.O_WRONLY | FileIo.O_APPEND, FdInfo.Read(p, 4).Flags & (FileIo.O_ACCMODE | FileIo.O_APPEND));
            Assert.Equal(100, FdInfo.Read(p, 6).Pos);
            Assert.True(Kcmp.SameFile(p, 6, p, 7), "dup'ed fds 6 and 7 are one description");
            Assert.Equal(10, FdInfo.Read(p, 8).Pos);
            Assert.NotEqual(0, FdInfo.Read(p, 8).Flags & FileIo.O_CLOEXEC);
            Assert.Equal(0, FdInfo.Read(p, 3).Flags & FileIo.O_CLOEXEC);
            Assert.NotEqual(0, FdInfo.Read(p, 9).Flags & FileIo.O_NONBLOCK);
            Assert.Equal(links[9], links[10]);                          // both ends of one pipe
            Assert.Equal(links[11], ProcFds.Read(c).Single(f => f.Fd == 12).Target);   // parent → child pipe
            Assert.Equal([0, 1, 2, 12], ProcFds.Read(c).Select(f => f.Fd));

            Assert.Equal("self-data", ReadPipe(p, 9));
            Assert.Equal("to-child", ReadPipe(c, 12));

            Assert.Equal(workDir, new FileInfo($"/proc/{p}/cwd").LinkTarget);
            Assert.Equal(0x17u, ProcStatus.Read(p).Umask);
            Assert.Equal(0x17u, ProcStatus.Read(c).Umask);
        }
        finally
        {
            ctx.Dispose();   // crisp's copies of the descriptions closed (the context owns them)
            foreach (var t in ctx.Tasks)
                (t.Puppet as Puppet)?.Kill();
            Directory.Delete(dir, recursive: true);
            Directory.Delete(workDir, recursive: true);
        }
    }

    private static string ReadPipe(int pid, int fd)
    {
        using var pidfd = PidFd.Open(pid);
        using var end = pidfd.GetFd(fd);
        FdOps.SetStatusFlags(end.Fd, FileIo.O_NONBLOCK);
        var buf = new byte[64];
        return Encoding.ASCII.GetString(buf, 0, FileIo.Read(end.Fd, buf));
    }
}
