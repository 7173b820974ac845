using System.Text;
using Crisp.Linux;
using Crisp.Rpc.Proto;
using Crisp.Tests.Integration;
using Crisp.Tests.Support;
using Google.Protobuf;

namespace Crisp.Tests.Rpc;

/// <summary>`crisp service --address SOCKET` (CRIU's RPC daemon) and `crisp install --as-criu`.</summary>
public class ServiceAndInstallTests
{
    [RootFact]
    public void ServiceAnswersOneConnectionAfterAnotherAndRefusesRstSibling()
    {
        using var dir = new Live.TempDir();
        string socket = Path.Combine(dir.Path, "criu.sock"), log = Path.Combine(dir.Path, "service.log");
        int service = Spawn.Start(CrispCli.Exe, ["crisp", "service", "--address", socket, "-o", log, "-v4"],
            new SpawnOptions { Opens = Live.DevNullStdio });
        try
        {
            Live.WaitFor(() => File.Exists(socket), "the service socket");
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(socket));
            for (int i = 0; i < 2; i++)
            {
                var version = Call(socket, new criu_req { Type = criu_req_type.Version });
                Assert.True(version.Success);
                Assert.True(version.Version.MajorNumber >= 4);
            }
            var sibling = Call(socket, new criu_req { Type = criu_req_type.Restore, Opts = new criu_opts { ImagesDirFd = -1, ImagesDir = dir.Path, RstSibling = true } });
            Assert.False(sibling.Success);
            Assert.Contains("rst_sibling is not allowed in the standalone service", sibling.CrErrmsg);
            Assert.True(Spawn.TryReap(service) is null, "the service runs on");
            Assert.Equal(3, File.ReadAllText(log).Split("serves a connection").Length - 1);
        }
        finally
        {
            RawSyscall.TryCall(Sysno.kill, service, 9);
            try { Spawn.Reap(service); } catch (SyscallException) { }
        }
    }

    [RootFact]
    public void InstallAsCriuPutsCrispOnPathAsCriuAnsweringInCriusShapeAndUndoTakesItBack()
    {
        using var dir = new Live.TempDir();
        string prefix = Path.Combine(dir.Path, "prefix"), bin = Path.Combine(prefix, "bin");
        Directory.CreateDirectory(bin);
        File.WriteAllText(Path.Combine(bin, "criu"), "#!/bin/sh\necho an older criu\n");   // kept aside and put back

        var install = CrispCli.Run("install", "--as-criu", "--prefix", prefix);
        Assert.True(install.ExitCode == 0, install.Stdout + install.Stderr);
        Assert.Equal("crisp", new FileInfo(Path.Combine(bin, "criu")).LinkTarget);
        Assert.True(File.Exists(Path.Combine(bin, "criu.before-crisp")));

        var version = CrispCli.RunProcess(Path.Combine(bin, "criu"), TimeSpan.FromSeconds(30), null, "--version");
        Assert.Equal(0, version.ExitCode);
        Assert.Matches(@"^Version: 4\.\d+\n", version.Stdout);
        var check = CrispCli.RunProcess(Path.Combine(bin, "criu"), TimeSpan.FromSeconds(60), null, "check");
        Assert.True(check.ExitCode == 0, check.Stdout + check.Stderr);
        Assert.Equal("Looks good.\n", check.Stdout);
        // Under its own name it still reports feature by feature.
        var crispCheck = CrispCli.RunProcess(Path.Combine(bin, "crisp"), TimeSpan.FromSeconds(60), null, "check");
        Assert.Contains("clone3_set_tid", crispCheck.Stdout);

        var undo = CrispCli.Run("install", "--undo", "--prefix", prefix);
        Assert.True(undo.ExitCode == 0, undo.Stdout + undo.Stderr);
        Assert.False(File.Exists(Path.Combine(bin, "crisp")));
        Assert.Equal("#!/bin/sh\necho an older criu\n", File.ReadAllText(Path.Combine(bin, "criu")));
        Assert.False(File.Exists(Path.Combine(bin, "criu.before-crisp")));
        Assert.False(Directory.Exists(Path.Combine(prefix, "lib", "crisp")));
    }

    private static criu_resp Call(string socket, criu_req req)
    {
        using var fd = SocketCalls.Socket(SocketCalls.AF_UNIX, Sockets.SOCK_SEQPACKET);
        SocketCalls.Connect(fd.Fd, SocketCalls.UnixAddress(Encoding.UTF8.GetBytes(socket)));
        SocketCalls.Send(fd.Fd, req.ToByteArray(), 0);
        var buffer = new byte[1 << 16];
        long n = SocketCalls.TryRecv(fd.Fd, buffer, 0);
        Assert.True(n > 0, $"recv: {n}");
        return criu_resp.Parser.ParseFrom(buffer, 0, (int)n);
    }
}
