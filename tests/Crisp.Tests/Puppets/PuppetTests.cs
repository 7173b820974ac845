using Crisp.Compel;
using Crisp.Compel.Puppets;
using Crisp.Linux;
using Crisp.Linux.Proc;
using Crisp.Tests.Support;

namespace Crisp.Tests.Puppets;

public class PuppetTests
{
    /// <summary>A PID nobody uses now, well above the last one handed out.</summary>
    internal static int FreePid(int offset = 3000)
    {
        int last = int.Parse(File.ReadAllText("/proc/sys/kernel/ns_last_pid").Trim());
        int max = int.Parse(File.ReadAllText("/proc/sys/kernel/pid_max").Trim());
        // A random start: tests running side by side that ask at the same moment must not get the same PID.
        for (int pid = last + offset + Random.Shared.Next(2000); ; pid++)
        {
            if (pid >= max)
                pid = max / 2 + Random.Shared.Next(max / 4);   // not 300: right after a wrap the kernel hands out the lowest free PIDs itself
            if (!Directory.Exists($"/proc/{pid}"))
                return pid;
        }
    }

    [RootFact]
    public void ClonesPuppetsWithChosenPidsAndParents()
    {
        using var tracer = new Tracer();
        var seizer = new Seizer(tracer);
        var first = Puppet.Spawn(seizer);
        Puppet? root = null, child = null;
        try
        {
            int rootPid = FreePid(), childPid = FreePid(5000);
            root = first.Clone(rootPid, sibling: true);
            child = root.Clone(childPid);
            Assert.Equal(rootPid, root.Pid);
            Assert.Equal(Environment.ProcessId, ProcStatus.Read(rootPid).PPid);
            Assert.Equal(rootPid, ProcStatus.Read(childPid).PPid);
            Assert.Equal(childPid, child.Remote.Getpid());
            Assert.Equal(rootPid, child.Call("getppid", Sysno.getppid));
            // Traced by our tracer thread (TracerPid names the thread, not the process).
            Assert.Equal(tracer.ThreadId, ProcStatus.Read(childPid).TracerPid);
        }
        finally
        {
            child?.Kill();
            root?.Kill();
            first.Kill();
        }
        Assert.False(Directory.Exists($"/proc/{first.Pid}"));
    }

    [RootFact]
    public void TakenPidIsAClearError()
    {
        using var tracer = new Tracer();
        var first = Puppet.Spawn(new Seizer(tracer));
        try
        {
            var e = Assert.Throws<CrispException>(() => first.Clone(Environment.ProcessId));
            Assert.Equal($"PID {Environment.ProcessId} is already in use", e.Message);
        }
        finally
        {
            first.Kill();
        }
    }

    /// <summary>A batch runs in the puppet in one stop: every call in turn whatever each returns, each result in its
    /// place (a failure as -errno, later calls still run), the six arguments passed, and the registers left as they
    /// were for the next single call.</summary>
    [RootFact]
    public void ASyscallBatchRunsEveryCallInOneStopWithItsOwnResult()
    {
        using var tracer = new Tracer();
        var puppet = Puppet.Spawn(new Seizer(tracer));
        try
        {
            var remote = puppet.Remote;
            long before = remote.CallCount;
            const ulong Where = 0x7f0000000000;
            var results = remote.Syscalls([
                new RemoteCall(Sysno.getpid),
                new RemoteCall(Sysno.close, 987),                     // EBADF, and the batch goes on
                new RemoteCall(Sysno.mmap, (long)Where, 3 * Mman.PageSize, Mman.PROT_READ, Mman.MAP_PRIVATE | Mman.MAP_ANONYMOUS | Mman.MAP_FIXED, -1, 0),
                new RemoteCall(Sysno.getppid),
            ]);
            Assert.Equal([puppet.Pid, -Errnos.EBADF, (long)Where, Environment.ProcessId], results);
            Assert.Equal(before + 4, remote.CallCount);
            var area = ProcMaps.Read(puppet.Pid).Single(m => m.Start == Where);
            Assert.Equal(Where + 3 * Mman.PageSize, area.End);   // length and flags (a5, a6 = -1, 0) arrived
            Assert.Equal(puppet.Pid, remote.Getpid());            // a single call after the batch still works
        }
        finally
        {
            puppet.Kill();
        }
    }

    /// <summary>A batch of more calls than one table holds runs as several, in order, each result in its place; and a
    /// table never lands on the calls' own data: with 60 KiB put on the scratch data first, the batch tables fit in
    /// what is left and the data reads back unchanged.</summary>
    [RootFact]
    public void ALongBatchRunsInPiecesBesideTheCallsData()
    {
        using var tracer = new Tracer();
        var puppet = Puppet.Spawn(new Seizer(tracer));
        try
        {
            var remote = puppet.Remote;
            var data = new byte[60 << 10];
            new Random(15).NextBytes(data);
            ulong at = remote.PutOnScratch(data);
            var calls = Enumerable.Range(0, 600).Select(i => i % 3 == 0 ? new RemoteCall(Sysno.getppid) : new RemoteCall(Sysno.getpid)).ToList();
            var results = remote.Syscalls(calls);
            Assert.Equal(calls.Select((c, i) => i % 3 == 0 ? (long)Environment.ProcessId : puppet.Pid), results);
            var back = new byte[data.Length];
            remote.ReadMemory(at, back);
            Assert.True(data.AsSpan().SequenceEqual(back), "the batch tables overwrote the scratch data");
        }
        finally
        {
            puppet.Kill();
        }
    }
}
