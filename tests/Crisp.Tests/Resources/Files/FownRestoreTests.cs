using Crisp.Dump;
using Crisp.Linux;
using Crisp.Restore;
using Crisp.Tests.Integration;
using Crisp.Tests.Namespaces;
using Crisp.Tests.Support;
using Xunit.Abstractions;

namespace Crisp.Tests.Resources.Files;

/// <summary>fown_state: a pipe whose SIGIO owner is the task's child (F_SETOWN, F_SETSIG SIGRTMIN+1, O_ASYNC)
/// and an eventfd owned by the task itself, once in crisp's pid namespace and once as PID 1 of its own. The
/// owners are set when the restored tree exists, by the pids the tree knows; after restore the workload reads
/// them back and its child must get the signal a write into the pipe raises.</summary>
public class FownRestoreTests(ITestOutputHelper output)
{
    [RootFact]
    public void SigioOwnersAreTasksOfTheTreeAfterRestore() => WorkloadRoundTrip.ExpectPass(output, "fown_state", []);

    [RootFact]
    public void SigioOwnersInsideAPidNamespaceAreItsPids()
    {
        string exe = Support.Workloads.Build("fown_state");
        using var dir = new Live.TempDir();
        var unshare = Workload.Start("/usr/bin/unshare", ["unshare", "--fork", "--pid", exe, dir.Path], dir.Path);
        int root = 0;
        bool unshareReaped = false;
        try
        {
            Assert.Equal(["ready", "1", "2"], unshare.WaitReady("fown_state's ready line"));
            root = PidNamespaceTests.Children(unshare.Pid).Single();
            var tree = Live.Logged(output, log =>
            {
                new Dumper(new DumpOptions { RootPid = root, ImagesDir = dir.Images }, log).Run();
                Live.ReapWithin(unshare.Pid);
                unshareReaped = true;
                return new Restorer(new RestoreOptions { ImagesDir = dir.Images, Detached = true }, log).Run();
            });
            root = tree.RootPid;
            Live.AssertCritDecodesAll(dir.Images);
            Live.SignalAndExpectPass(root, dir.Path, () => Live.ExitCodeWithin(tree));
            root = 0;
        }
        finally
        {
            if (root > 0)
                RawSyscall.TryCall(Sysno.kill, root, Live.SIGKILL);
            if (!unshareReaped)
            {
                RawSyscall.TryCall(Sysno.kill, unshare.Pid, Live.SIGKILL);
                Live.ReapWithin(unshare.Pid);
            }
        }
    }
}
