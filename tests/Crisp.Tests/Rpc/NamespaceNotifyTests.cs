using Crisp.Linux;
using Crisp.Rpc.Proto;
using Crisp.Tests.Integration;
using Crisp.Tests.Namespaces;
using Crisp.Tests.Support;

namespace Crisp.Tests.Rpc;

/// <summary>A tree with pid and uts namespaces of its own, restored over RPC: setup-namespaces and
/// post-setup-namespaces are notified once the root exists in its namespaces, setup-namespaces and post-restore
/// carrying the restored root's (host) pid, as runc needs them to run its hooks and write its pid file.</summary>
public class NamespaceNotifyTests
{
    [RootFact]
    public void RestoringANamespacedTreeNotifiesSetupNamespacesWithTheRootPid()
    {
        string exe = Support.Workloads.Build("pidns_tree");
        using var dir = new Live.TempDir();
        int unshare = PidNamespaceTests.StartInNamespaces(exe, dir.Path);
        int root = 0;
        bool unshareReaped = false;
        try
        {
            PidNamespaceTests.WaitReady(dir.Path, unshare);
            root = PidNamespaceTests.Children(unshare).Single();
            string images = SwrkTests.MakeDir(dir.Images);
            using var imagesFd = FileIo.Open(images, FileIo.O_RDONLY | FileIo.O_DIRECTORY);
            using (var client = new RpcClient(dir.Path))
            {
                var dump = client.Call(new criu_req { Type = criu_req_type.Dump, Opts = new criu_opts { ImagesDirFd = imagesFd.Fd, Pid = root, NotifyScripts = true } });
                Assert.True(dump.Success, dump.CrErrmsg);
                Assert.Equal(["pre-dump", "post-dump"], client.Notifications.Select(n => n.Script));
                client.AssertCleanExit();
            }
            Live.ReapWithin(unshare);
            unshareReaped = true;
            Live.WaitFor(() => !Directory.Exists($"/proc/{root}"), "the dumped root to be gone");

            using (var client = new RpcClient(dir.Path))
            {
                var restore = client.Call(new criu_req
                {
                    Type = criu_req_type.Restore,
                    Opts = new criu_opts { ImagesDirFd = imagesFd.Fd, RstSibling = true, NotifyScripts = true, LogFile = "restore.log", LogLevel = 4 },
                });
                Assert.True(restore.Success, $"{restore.CrErrmsg}\n{SwrkTests.Log(images, "restore.log")}");
                root = restore.Restore.Pid;
                Assert.Equal([("pre-restore", null), ("setup-namespaces", root), ("post-setup-namespaces", null), ("post-restore", root),
                    ("pre-resume", null), ("post-resume", null)], client.Notifications);
                client.AssertCleanExit();
            }
            Assert.Equal(Environment.ProcessId, Crisp.Linux.Proc.ProcStat.Read(root).PPid);
            Assert.Contains("\t1", File.ReadLines($"/proc/{root}/status").First(l => l.StartsWith("NSpid:")));   // pid 1 of its namespace
        }
        finally
        {
            if (root > 0)
            {
                RawSyscall.TryCall(Sysno.kill, root, Live.SIGKILL);
                Wait.TryWaitPid(root, out _, Wait.WALL);
            }
            if (!unshareReaped)
            {
                RawSyscall.TryCall(Sysno.kill, unshare, Live.SIGKILL);
                Live.ReapWithin(unshare);
            }
        }
    }
}
