using Crisp.Linux;
using Crisp.Rpc.Proto;
using Crisp.Tests.Integration;
using Crisp.Tests.Support;
using Google.Protobuf;

namespace Crisp.Tests.Rpc;

/// <summary>Requests crisp swrk cannot serve: each gets exactly one response with success=false, a cr_errno and one
/// cr_errmsg line naming the problem; crisp exits 0 without a word on its stdio, leaves no process behind and does not
/// touch the tree or the images.</summary>
public class SwrkBadInputTests
{
    [RootFact]
    public void AnUnknownRequestTypeIsRefused()
    {
        var resp = OneBadPacket([0x08, 99]);   // criu_req.type = 99
        Assert.Contains("unknown request type 99", resp.CrErrmsg);
    }

    [RootFact]
    public void ATruncatedPacketIsRefused()
    {
        var whole = new criu_req { Type = criu_req_type.Dump, Opts = new criu_opts { ImagesDirFd = 5, LogFile = "dump.log", Root = "/somewhere" } }.ToByteArray();
        var resp = OneBadPacket(whole.AsSpan(0, whole.Length - 4).ToArray());
        Assert.Contains("is not a criu_req", resp.CrErrmsg);
    }

    [RootFact]
    public void AnOversizedPacketIsRefused()
    {
        using var dir = new Live.TempDir();
        using var client = new RpcClient(dir.Path);
        // Room in our send buffer for one packet of 2 MiB (SO_SNDBUFFORCE: root).
        SocketCalls.SetInt(client.Socket, SocketCalls.SOL_SOCKET, 32, 8 << 20);
        var packet = new byte[2 << 20];
        packet[0] = 0x08;
        packet[1] = 10;
        client.SendRaw(packet);
        var resp = client.Receive();
        AssertOneError(resp);
        Assert.Contains("larger than crisp reads", resp.CrErrmsg);
        client.AssertCleanExit();
    }

    [RootFact]
    public void AnImagesDirFdNotOpenInTheCallerIsRefused()
    {
        using var dir = new Live.TempDir();
        using var client = new RpcClient(dir.Path);
        const int notOpen = 999;
        Assert.False(File.Exists($"/proc/self/fd/{notOpen}"));
        var resp = client.Call(new criu_req { Type = criu_req_type.Restore, Opts = new criu_opts { ImagesDirFd = notOpen, RstSibling = true } });
        AssertOneError(resp, criu_req_type.Restore);
        Assert.Equal($"criu_opts.images_dir_fd {notOpen} is not an open descriptor of the caller (pid {Environment.ProcessId})", resp.CrErrmsg);
        Assert.Equal(-1, resp.Restore.Pid);
        client.AssertCleanExit();
    }

    [RootFact]
    public void DumpingAProcessThatIsNotThereAnswersEsrch()
    {
        using var dir = new Live.TempDir();
        string images = SwrkTests.MakeDir(dir.Images);
        using var imagesFd = FileIo.Open(images, FileIo.O_RDONLY | FileIo.O_DIRECTORY);
        int gone = Spawn.Start("/bin/true", ["true"], new SpawnOptions { Opens = Live.DevNullStdio });
        Spawn.Reap(gone);
        using var client = new RpcClient(dir.Path);
        var resp = client.Call(new criu_req { Type = criu_req_type.Dump, Opts = new criu_opts { ImagesDirFd = imagesFd.Fd, Pid = gone } });
        AssertOneError(resp, criu_req_type.Dump);
        Assert.Equal(Errnos.ESRCH, resp.CrErrno);
        Assert.Equal($"process {gone} not found", resp.CrErrmsg);
        client.AssertCleanExit();
        Assert.Empty(Directory.EnumerateFileSystemEntries(images));
    }

    [RootFact]
    public void ARelativeImagesDirIsRefused()
    {
        using var dir = new Live.TempDir();
        using var client = new RpcClient(dir.Path);
        var resp = client.Call(new criu_req { Type = criu_req_type.Dump, Opts = new criu_opts { ImagesDirFd = -1, ImagesDir = "images", Pid = 1 } });
        AssertOneError(resp, criu_req_type.Dump);
        Assert.Contains("images_dir 'images' is relative", resp.CrErrmsg);
        client.AssertCleanExit();
    }

    [RootFact]
    public void APreDumpWithoutPidAnOptionCrispLacksAndKeepOpenOnADumpAreRefusedByName()
    {
        using var dir = new Live.TempDir();
        string images = SwrkTests.MakeDir(dir.Images);
        using var imagesFd = FileIo.Open(images, FileIo.O_RDONLY | FileIo.O_DIRECTORY);
        var cases = new (criu_req Req, string Message)[]
        {
            (new criu_req { Type = criu_req_type.PreDump, Opts = new criu_opts { ImagesDirFd = imagesFd.Fd } },
                "criu_opts.pid is not set"),
            (new criu_req { Type = criu_req_type.Dump, Opts = new criu_opts { ImagesDirFd = imagesFd.Fd, Pid = 1, LazyPages = true } },
                "dump --lazy-pages needs --port P"),
            (new criu_req { Type = criu_req_type.Dump, Opts = new criu_opts { ImagesDirFd = imagesFd.Fd } },
                "criu_opts.pid is not set"),
            (new criu_req { Type = criu_req_type.Dump, KeepOpen = true, Opts = new criu_opts { ImagesDirFd = imagesFd.Fd, Pid = 1 } },
                "keep_open works only with VERSION"),
            (new criu_req { Type = criu_req_type.Restore, Opts = new criu_opts { ImagesDirFd = imagesFd.Fd, LogFile = "../x.log" } },
                "criu_opts.log_file '../x.log' names a subdirectory"),
            (new criu_req { Type = criu_req_type.Dump, Opts = new criu_opts { ImagesDirFd = imagesFd.Fd, Pid = 1, LogToStderr = true } },
                "criu_opts.log_to_stderr is refused"),
        };
        foreach (var (req, message) in cases)
        {
            using var client = new RpcClient(dir.Path);
            var resp = client.Call(req);
            AssertOneError(resp, req.Type);
            Assert.Contains(message, resp.CrErrmsg);
            client.AssertCleanExit();
        }
        Assert.Empty(Directory.EnumerateFileSystemEntries(images));
    }

    [RootFact]
    public void ANotifyNeverAckedFailsTheDumpAndTheTreeRunsOnUntouched()
        => Live.WithStatecheck((dir, pid, pids) =>
        {
            string images = SwrkTests.MakeDir(dir.Images);
            var state = TaskStateSnapshot.OfQuietTree(pid);
            using var imagesFd = FileIo.Open(images, FileIo.O_RDONLY | FileIo.O_DIRECTORY);
            using var client = new RpcClient(dir.Path, new Dictionary<string, string> { ["CRISP_RPC_NOTIFY_TIMEOUT"] = "0.5" });
            client.Send(new criu_req
            {
                Type = criu_req_type.Dump,
                Opts = new criu_opts { ImagesDirFd = imagesFd.Fd, Pid = pid, NotifyScripts = true },
            });
            var notify = client.Receive();
            Assert.Equal(criu_req_type.Notify, notify.Type);
            Assert.Equal("pre-dump", notify.Notify.Script);
            // No ack: crisp gives up after 0.5 s.
            var resp = client.Receive(TimeSpan.FromSeconds(30));
            AssertOneError(resp, criu_req_type.Dump);
            Assert.Equal("pre-dump notify failed: no answer from the RPC client within 0.5 s", resp.CrErrmsg);
            client.AssertCleanExit();
            Assert.Empty(Directory.EnumerateFileSystemEntries(images));
            StateDiff.AssertRestored(state, when: "after a dump that failed at pre-dump");
            Live.SignalAndExpectPass(pid, dir.Path, () =>
            {
                var status = Live.ReapWithin(pid);
                return status.Signaled ? 128 + status.TermSignal : status.ExitCode;
            });
        });

    [RootFact]
    public void ANackedPostRestoreKillsTheRestoredTreeAndLeavesTheImagesAsTheyWere()
        => Live.WithStatecheck((dir, pid, pids) =>
        {
            string images = SwrkTests.MakeDir(dir.Images), work = SwrkTests.MakeDir(Path.Combine(dir.Path, "work"));
            using var imagesFd = FileIo.Open(images, FileIo.O_RDONLY | FileIo.O_DIRECTORY);
            using var workFd = FileIo.Open(work, FileIo.O_RDONLY | FileIo.O_DIRECTORY);
            using (var client = new RpcClient(dir.Path))
            {
                var dump = client.Call(new criu_req { Type = criu_req_type.Dump, Opts = new criu_opts { ImagesDirFd = imagesFd.Fd, Pid = pid } });
                Assert.True(dump.Success, dump.CrErrmsg);
                client.AssertCleanExit();
            }
            Live.WaitPidsFree(pids, pid);
            var hashes = Live.Hashes(images);
            using (var client = new RpcClient(dir.Path))
            {
                var restore = client.Call(new criu_req
                {
                    Type = criu_req_type.Restore,
                    Opts = new criu_opts { ImagesDirFd = imagesFd.Fd, WorkDirFd = workFd.Fd, RstSibling = true, NotifyScripts = true, LogFile = "restore.log" },
                }, ack: script => script != "post-restore");
                AssertOneError(restore, criu_req_type.Restore);
                Assert.Equal("post-restore notify failed: the RPC client reported a script error", restore.CrErrmsg);
                Assert.Equal(["pre-restore", "post-restore"], client.Notifications.Select(n => n.Script));
                client.AssertCleanExit();
            }
            Live.WaitPidsFree(pids, pid);   // every restored task is gone again
            Assert.Equal(hashes, Live.Hashes(images));
            Assert.Contains("post-restore notify failed", File.ReadAllText(Path.Combine(work, "restore.log")));
        });

    /// <summary>One packet in, one failure out, a clean exit.</summary>
    private static criu_resp OneBadPacket(byte[] packet)
    {
        using var dir = new Live.TempDir();
        using var client = new RpcClient(dir.Path);
        client.SendRaw(packet);
        var resp = client.Receive();
        AssertOneError(resp);
        client.AssertCleanExit();
        return resp;
    }

    private static void AssertOneError(criu_resp resp, criu_req_type type = criu_req_type.Empty)
    {
        Assert.False(resp.Success);
        Assert.Equal(type, resp.Type);
        Assert.True(resp.HasCrErrno && resp.CrErrno > 0, "cr_errno is set");
        Assert.False(string.IsNullOrWhiteSpace(resp.CrErrmsg));
        Assert.DoesNotContain('\n', resp.CrErrmsg);
    }
}
