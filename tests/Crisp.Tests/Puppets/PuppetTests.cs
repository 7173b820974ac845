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
}
