using Crisp.Cli.CommandLine;
using Crisp.Linux;
using Crisp.Rpc.Proto;
using Crisp.Tests.Integration;
using Crisp.Tests.Support;

namespace Crisp.Tests.Rpc;

/// <summary>`crisp swrk FD` driven as runc and libcriu drive `criu swrk`: VERSION, FEATURE_CHECK, CHECK, a real
/// dump and a restore whose root becomes our child, the NOTIFY round trips, leave_running. Every session must end
/// with crisp exiting 0 and nothing written to its fds 0-2.</summary>
public class SwrkTests
{
    [RootFact]
    public void VersionAnswersAsCriu4WithoutGitIdAndKeepOpenServesAFeatureCheckAfterIt()
    {
        using var dir = new Live.TempDir();
        using var client = new RpcClient(dir.Path);
        var version = client.Call(new criu_req { Type = criu_req_type.Version, KeepOpen = true });
        Assert.True(version.Success);
        Assert.Equal(criu_req_type.Version, version.Type);
        Assert.True(version.Version.MajorNumber >= 4);
        Assert.False(version.Version.HasGitid);   // go-criu adds a minor version for a git build
        Assert.StartsWith("crisp", version.Version.Name);

        var features = client.Call(new criu_req
        {
            Type = criu_req_type.FeatureCheck,
            Features = new criu_features { MemTrack = true, LazyPages = true, PidfdStore = true },
        });
        Assert.True(features.Success);
        Assert.True(features.Features.HasMemTrack && features.Features.HasLazyPages && features.Features.HasPidfdStore);
        // Truthful: memory tracking and lazy pages as far as crisp and this kernel go (lazy_pages probe); no pidfd store yet.
        Assert.Equal(Supported("track-mem"), features.Features.MemTrack);
        Assert.Equal(Supported("lazy-pages"), features.Features.LazyPages);
        Assert.False(features.Features.PidfdStore);
        client.AssertCleanExit();
    }

    [RootFact]
    public void CheckSucceedsOnThisKernel()
    {
        using var dir = new Live.TempDir();
        using var client = new RpcClient(dir.Path);
        var check = client.Call(new criu_req { Type = criu_req_type.Check });
        Assert.True(check.Success, check.CrErrmsg);
        Assert.Equal(criu_req_type.Check, check.Type);
        client.AssertCleanExit();
    }

    [RootFact]
    public void DumpAndSiblingRestoreOverRpcWithNotifiesAndTheWorkloadPasses()
        => Live.WithStatecheck((dir, pid, pids) =>
        {
            string images = MakeDir(dir.Images), work = MakeDir(Path.Combine(dir.Path, "work"));
            var state = TaskStateSnapshot.OfQuietTree(pid);
            using var imagesFd = FileIo.Open(images, FileIo.O_RDONLY | FileIo.O_DIRECTORY);
            using var workFd = FileIo.Open(work, FileIo.O_RDONLY | FileIo.O_DIRECTORY);

            using (var client = new RpcClient(dir.Path))
            {
                var dump = client.Call(new criu_req
                {
                    Type = criu_req_type.Dump,
                    Opts = new criu_opts
                    {
                        ImagesDirFd = imagesFd.Fd, WorkDirFd = workFd.Fd, Pid = pid, LogFile = "dump.log", LogLevel = 4,
                        NotifyScripts = true,
                    },
                });
                Assert.True(dump.Success, $"{dump.CrErrmsg}\n{Log(work, "dump.log")}");
                Assert.Equal(criu_req_type.Dump, dump.Type);
                Assert.False(dump.Dump.Restored);
                Assert.Equal([("pre-dump", null), ("post-dump", null)], client.Notifications);
                client.AssertCleanExit();
            }
            Live.WaitPidsFree(pids, pid);
            Assert.Contains("Dumping finished successfully", Log(work, "dump.log"));
            Assert.True(File.Exists(Path.Combine(work, "stats-dump")), "stats-dump goes to the work dir");
            Live.AssertCritDecodesAll(images);

            using (var client = new RpcClient(dir.Path))
            {
                var restore = client.Call(new criu_req
                {
                    Type = criu_req_type.Restore,
                    Opts = new criu_opts
                    {
                        ImagesDirFd = imagesFd.Fd, WorkDirFd = workFd.Fd, LogFile = "restore.log", LogLevel = 4,
                        RstSibling = true, NotifyScripts = true,
                    },
                });
                Assert.True(restore.Success, $"{restore.CrErrmsg}\n{Log(work, "restore.log")}");
                Assert.Equal(pid, restore.Restore.Pid);
                // CRIU's restore notifications; setup-namespaces only for a tree with namespaces of its own.
                Assert.Equal([("pre-restore", null), ("post-restore", pid), ("pre-resume", null), ("post-resume", null)],
                    client.Notifications);
                client.AssertCleanExit();
            }
            // rst_sibling: the restored root is the caller's child, crisp's sibling.
            Assert.Equal(Environment.ProcessId, Crisp.Linux.Proc.ProcStat.Read(pid).PPid);
            StateDiff.AssertRestored(state);
            Live.SignalAndExpectPass(pid, dir.Path, () =>
            {
                var status = Live.ReapWithin(pid);
                return status.Signaled ? 128 + status.TermSignal : status.ExitCode;
            });
        });

    [RootFact]
    public void LeaveRunningDumpLeavesTheTreeRunningAsItWas()
        => Live.WithStatecheck((dir, pid, pids) =>
        {
            string images = MakeDir(dir.Images);
            var state = TaskStateSnapshot.OfQuietTree(pid);
            using var imagesFd = FileIo.Open(images, FileIo.O_RDONLY | FileIo.O_DIRECTORY);
            using var client = new RpcClient(dir.Path);
            var dump = client.Call(new criu_req
            {
                Type = criu_req_type.Dump,
                Opts = new criu_opts { ImagesDirFd = imagesFd.Fd, Pid = pid, LeaveRunning = true },
            });
            Assert.True(dump.Success, dump.CrErrmsg);
            client.AssertCleanExit();
            Assert.True(File.Exists(Path.Combine(images, "pstree.img")));
            Assert.False(File.Exists(Path.Combine(images, "criu.log")), "no log_file: no log");
            StateDiff.AssertRestored(state, when: "after a leave_running dump");
            Assert.Equal("0", Status(pid, "TracerPid"));

            // Restoring it while it runs: its PIDs are taken (EEXIST), and nothing happens to it.
            using var again = new RpcClient(dir.Path);
            var restore = again.Call(new criu_req { Type = criu_req_type.Restore, Opts = new criu_opts { ImagesDirFd = imagesFd.Fd, RstSibling = true } });
            Assert.False(restore.Success);
            Assert.Equal(Errnos.EEXIST, restore.CrErrno);
            Assert.Contains("is already in use", restore.CrErrmsg);
            again.AssertCleanExit();
            StateDiff.AssertRestored(state, when: "after a refused restore");
            Live.SignalAndExpectPass(pid, dir.Path, () =>
            {
                var status = Live.ReapWithin(pid);
                return status.Signaled ? 128 + status.TermSignal : status.ExitCode;
            });
        });

    internal static bool Supported(string option) => CriuOptions.All.First(o => o.Long == option).Supported;

    internal static string MakeDir(string path)
    {
        Directory.CreateDirectory(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        return path;
    }

    internal static string Log(string dir, string name) =>
        File.Exists(Path.Combine(dir, name)) ? File.ReadAllText(Path.Combine(dir, name)) : $"(no {name})";

    private static string Status(int pid, string key) =>
        File.ReadLines($"/proc/{pid}/status").First(l => l.StartsWith(key + ":")).Split(':', 2)[1].Trim();
}
