using Crisp.Compel;
using Crisp.Linux;
using Crisp.Tests.Support;

namespace Crisp.Tests.Compel;

[Collection("compel")]
public sealed class SpawnTests
{
    [Fact]
    public void ChildHasDefaultSignalsNoneBlockedAndOwnSessionWhenAsked()
    {
        int pid = Spawn.Start("/bin/sleep", ["sleep", "5"], new SpawnOptions { NewSession = true });
        try
        {
            string status = File.ReadAllText($"/proc/{pid}/status");
            // .NET ignores SIGPIPE and may block signals in its threads: none of it may leak to the child.
            RemoteSyscallTests.SpinUntil(() => File.ReadAllText($"/proc/{pid}/cmdline").StartsWith("sleep"));
            status = File.ReadAllText($"/proc/{pid}/status");
            string Field(string key) => status.Split('\n').First(l => l.StartsWith(key)).Split('\t')[1];
            Assert.Equal("0000000000000000", Field("SigIgn:"));
            Assert.Equal("0000000000000000", Field("SigBlk:"));
            var stat = File.ReadAllText($"/proc/{pid}/stat").Split(") ")[1].Split(' ');
            Assert.Equal(pid.ToString(), stat[2]);   // pgrp
            Assert.Equal(pid.ToString(), stat[3]);   // session
        }
        finally
        {
            Assert.Equal(0, RawSyscall.Call("kill", Sysno.kill, pid, 9));
            var st = TestTracer.Shared.Run(() => Spawn.Reap(pid));
            Assert.True(st.Signaled && st.TermSignal == 9, st.ToString());
        }
    }

    [Fact]
    public void ExitCodeIsReapedAndRedirectionsApply()
    {
        string file = Path.Combine(Path.GetTempPath(), $"crisp-spawn-{Environment.ProcessId}.txt");
        try
        {
            int pid = Spawn.Start("/bin/sh", ["sh", "-c", "echo out-$X; exit 7"], new SpawnOptions
            {
                Environment = ["X=yes", "PATH=/usr/bin:/bin"],
                Opens = [(1, file, 0x241 /* O_WRONLY|O_CREAT|O_TRUNC */, 0x1a4 /* 0644 */)],
            });
            var st = TestTracer.Shared.Run(() => Spawn.Reap(pid));
            Assert.True(st.Exited && st.ExitCode == 7, st.ToString());
            Assert.Equal("out-yes\n", File.ReadAllText(file));
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public void MissingProgramIsASyscallException()
    {
        var e = Assert.Throws<SyscallException>(() => Spawn.Start("/nonexistent/prog", ["prog"]));
        Assert.Equal(Errnos.ENOENT, e.Errno);
        Assert.Contains("posix_spawn(/nonexistent/prog)", e.Message);
    }
}
