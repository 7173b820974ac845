using Crisp.Cli.Rpc;
using Crisp.Rpc.Proto;

namespace Crisp.Tests.Rpc;

/// <summary>criu_opts become the CLI's own options (so everything the CLI carries out is honoured over RPC), and a
/// CRIU config file becomes words for the same parser.</summary>
public class CriuOptsWordsTests
{
    [Fact]
    public void OptionsTheCliCarriesOutBecomeItsWords()
    {
        var opts = new criu_opts
        {
            ImagesDirFd = 3, Pid = 42, LeaveRunning = true, TcpEstablished = true, ExtUnixSk = true, ShellJob = true,
            FileLocks = true, FreezeCgroup = "/sys/fs/cgroup/freezer/x", Timeout = 7, GhostLimit = 4096,
            NetworkLock = criu_network_lock_method.Skip,
        };
        opts.InheritFd.Add(new inherit_fd { Fd = 5, Key = "pipe:[123]" });
        var words = CriuOptsWords.For(opts, criu_req_type.Dump, standalone: false).SelectMany(i => i.Words).ToList();
        Assert.Equal(["--tree=42", "--leave-running", "--ext-unix-sk", "--tcp-established", "--shell-job", "--file-locks",
            "--inherit-fd=fd[5]:pipe:[123]", "--ghost-limit=4096", "--freeze-cgroup=/sys/fs/cgroup/freezer/x", "--timeout=7",
            "--network-lock=skip"], words);
    }

    [Fact]
    public void AutodetectedExternalMountsAndTheirFlagsAreCarriedOut()
    {
        var opts = new criu_opts { ImagesDirFd = 3, Pid = 9, AutoExtMnt = true, ExtMasters = true, ExtSharing = true };
        var words = CriuOptsWords.For(opts, criu_req_type.Dump, standalone: false).SelectMany(i => i.Words).ToList();
        Assert.Equal(["--tree=9", "--ext-mount-map=auto", "--enable-external-sharing", "--enable-external-masters"], words);
        var args = Crisp.Cli.CommandLine.ArgumentParser.Parse(["dump", .. words], Crisp.Cli.CommandLine.CriuOptions.All);
        Assert.Equal(new Crisp.Resources.Mounts.AutoExternalMounts(Masters: true, Sharing: true),
            new Crisp.Cli.CommandContext(args, Crisp.Log.Null, TextWriter.Null).AutoExternalMounts());
    }

    [Fact]
    public void FalseBooleansAreNotOptionsAndRefusalsNameTheFieldAndTheOption()
    {
        // runc sends every boolean, most of them false.
        var quiet = new criu_opts { ImagesDirFd = 3, LazyPages = false, TrackMem = false, AutoDedup = false, RstSibling = true };
        Assert.Equal(["--restore-sibling"], CriuOptsWords.For(quiet, criu_req_type.Restore, false).SelectMany(i => i.Words));
        Assert.Equal(["--lazy-pages"], CriuOptsWords.For(new criu_opts { ImagesDirFd = 3, LazyPages = true }, criu_req_type.Restore, false).SelectMany(i => i.Words));
        Assert.Equal(["--lazy-pages", "--port=27", "--tree=1"], CriuOptsWords.For(new criu_opts { ImagesDirFd = 3, Pid = 1, LazyPages = true, Ps = new criu_page_server_info { Port = 27 } }, criu_req_type.Dump, false).SelectMany(i => i.Words).Order());
        var e = Assert.Throws<RpcRequestException>(() => CriuOptsWords.For(new criu_opts { ImagesDirFd = 3, Pid = 1, LinkRemap = true }, criu_req_type.Dump, false));
        Assert.Equal(RpcRequestException.EBADRQC, e.Errno);
        Assert.Throws<RpcRequestException>(() => CriuOptsWords.For(new criu_opts { ImagesDirFd = 3, PidfdStoreSk = 4 }, criu_req_type.Dump, false));
        var service = Assert.Throws<RpcRequestException>(() =>
            CriuOptsWords.For(new criu_opts { ImagesDirFd = 3, InheritFd = { new inherit_fd { Fd = 1, Key = "x" } } }, criu_req_type.Restore, standalone: true));
        Assert.Contains("inherit_fd is not allowed in the standalone service", service.Message);
    }

    [Fact]
    public void ConfigFileInCriusSyntaxBecomesWordsAndAMissingFileIsNone()
    {
        string path = Path.GetTempFileName();
        try
        {
            File.WriteAllText(path, "# runc.conf\n\ntcp-established\n  file-locks   # trailing comment\nlog-file \"my log.txt\"\n" +
                "lsm-profile \"selinux:a\\\"b\"\ntimeout 20 # seconds\n");
            Assert.Equal(["--tcp-established", "--file-locks", "--log-file=my log.txt", "--lsm-profile=selinux:a\"b", "--timeout=20"],
                CriuConfigFile.Read(path));
            File.WriteAllText(path, "timeout 20 30\n");
            Assert.Contains("line 1: more than one value for timeout", Assert.Throws<CrispException>(() => CriuConfigFile.Read(path)).Message);
        }
        finally
        {
            File.Delete(path);
        }
        Assert.Empty(CriuConfigFile.Read(path));
    }
}
