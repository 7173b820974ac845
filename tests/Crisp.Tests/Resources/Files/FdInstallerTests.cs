using Crisp.Compel;
using Crisp.Compel.Puppets;
using Crisp.Linux;
using Crisp.Linux.Proc;
using Crisp.Resources.Files;
using Crisp.Tests.Support;

namespace Crisp.Tests.Resources.Files;

public class FdInstallerTests
{
    [RootFact]
    public void InstallsTheSameDescriptionsAtChosenNumbers()
    {
        string path = Path.Combine(Path.GetTempPath(), $"crisp-fdinst-{Guid.NewGuid():N}");
        using var tracer = new Tracer();
        var puppet = Puppet.Spawn(new Seizer(tracer));
        try
        {
            using var file = FileIo.Open(path, FileIo.O_RDWR | FileIo.O_CREAT | FileIo.O_APPEND, 0600);
            FileIo.WriteExactly(file.Fd, "0123456789"u8);
            var (r, w) = FdOps.Pipe();
            using (r)
            using (w)
            {
                FileIo.WriteExactly(w.Fd, "hello"u8);
                FdInstaller.Install(puppet, [new(5, file.Fd, true), new(0, r.Fd, false)]);

                Assert.Equal([0, 5], ProcFds.Read(puppet.Pid).Select(f => f.Fd));
                int me = Environment.ProcessId;
                Assert.True(Kcmp.SameFile(me, file.Fd, puppet.Pid, 5));
                Assert.True(Kcmp.SameFile(me, r.Fd, puppet.Pid, 0));
                var info5 = FdInfo.Read(puppet.Pid, 5);
                Assert.Equal(10, info5.Pos);
                Assert.Equal(FileIo.O_RDWR | FileIo.O_APPEND | FileIo.O_CLOEXEC, info5.Flags & (FileIo.O_ACCMODE | FileIo.O_APPEND | FileIo.O_CLOEXEC));
                Assert.Equal(0, FdInfo.Read(puppet.Pid, 0).Flags & FileIo.O_CLOEXEC);

                // Shared description: a seek in crisp moves the puppet's offset.
                FileIo.Seek(file.Fd, 3, FileIo.SEEK_SET);
                Assert.Equal(3, FdInfo.Read(puppet.Pid, 5).Pos);
                // The puppet's fd 0 reads what crisp wrote into the pipe.
                using var pidfd = PidFd.Open(puppet.Pid);
                using var theirs = pidfd.GetFd(0);
                var buf = new byte[5];
                Assert.Equal(5, FileIo.Read(theirs.Fd, buf));
                Assert.Equal("hello"u8.ToArray(), buf);
            }
        }
        finally
        {
            puppet.Kill();
            File.Delete(path);
        }
    }

    [RootFact]
    public void TargetsOnTheNumbersReceivedFdsLandOnDoNotClobberEachOther()
    {
        using var tracer = new Tracer();
        var puppet = Puppet.Spawn(new Seizer(tracer));
        var locals = Enumerable.Range(0, 6).Select(_ => FileIo.Open("/dev/null", FileIo.O_RDONLY)).ToList();
        try
        {
            // Received fds land on 0..5 in order; targets ask for a permutation of those numbers.
            int[] targets = [1, 0, 3, 2, 5, 4];
            FdInstaller.Install(puppet, targets.Select((t, i) => new FdToInstall(t, locals[i].Fd, i % 2 == 0)).ToList());
            Assert.Equal([0, 1, 2, 3, 4, 5], ProcFds.Read(puppet.Pid).Select(f => f.Fd));
            for (int i = 0; i < targets.Length; i++)
            {
                Assert.True(Kcmp.SameFile(Environment.ProcessId, locals[i].Fd, puppet.Pid, targets[i]), $"fd {targets[i]}");
                Assert.Equal(i % 2 == 0, (FdInfo.Read(puppet.Pid, targets[i]).Flags & FileIo.O_CLOEXEC) != 0);
            }
        }
        finally
        {
            puppet.Kill();
            locals.ForEach(l => l.Dispose());
        }
    }

    [RootFact]
    public void MoreFdsThanOneMessageGoInBatchesAndLeaveNothingElseOpen()
    {
        using var tracer = new Tracer();
        var puppet = Puppet.Spawn(new Seizer(tracer));
        var locals = Enumerable.Range(0, FdInstaller.BatchSize + 72).Select(_ => FileIo.Open("/dev/null", FileIo.O_RDONLY)).ToList();
        try
        {
            // Sparse targets, highest first in the list: each message's fds arrive below their numbers.
            var targets = Enumerable.Range(0, locals.Count).Select(i => 3 + 2 * (locals.Count - 1 - i)).ToList();
            var fds = targets.Select((t, i) => new FdToInstall(t, locals[i].Fd, i % 3 == 0)).ToList();
            Assert.NotNull(FdInstaller.Placement(fds[..FdInstaller.BatchSize], [.. Enumerable.Range(0, FdInstaller.BatchSize)]));
            FdInstaller.Install(puppet, fds);
            Assert.Equal(targets.Order(), ProcFds.Read(puppet.Pid).Select(f => f.Fd));   // no transport, nothing received left
            for (int i = 0; i < targets.Count; i++)
            {
                Assert.True(Kcmp.SameFile(Environment.ProcessId, locals[i].Fd, puppet.Pid, targets[i]), $"fd {targets[i]}");
                Assert.Equal(i % 3 == 0, (FdInfo.Read(puppet.Pid, targets[i]).Flags & FileIo.O_CLOEXEC) != 0);
            }
        }
        finally
        {
            puppet.Kill();
            locals.ForEach(l => l.Dispose());
        }
    }

    [Fact]
    public void PlacementIsKnownInAdvanceOnlyWhenNoMoveLandsOnAPendingFd()
    {
        FdToInstall At(int target) => new(target, -1, false);
        // Received on 0 and 1 for targets 5 and 0: 5 first, then 0 (free once the first was moved).
        var plan = FdInstaller.Placement([At(5), At(0)], [0, 1]);
        Assert.NotNull(plan);
        Assert.Equal([(Sysno.dup3, 0L, 5L), (Sysno.close, 0L, 0L), (Sysno.dup3, 1L, 0L), (Sysno.close, 1L, 0L)],
            plan.Select(c => (c.Item2.Nr, c.Item2.A1, c.Item2.A2)));
        // A swap cannot be planned without a spare number chosen by the kernel.
        Assert.Null(FdInstaller.Placement([At(1), At(0)], [0, 1]));
    }
}
