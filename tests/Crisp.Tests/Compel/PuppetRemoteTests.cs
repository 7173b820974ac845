using Crisp.Compel;
using Crisp.Compel.Puppets;
using Crisp.Linux;
using Crisp.Tests.Support;

namespace Crisp.Tests.Compel;

[Collection("compel")]
public sealed class PuppetRemoteTests
{
    [RootFact]
    public void RemoteSyscallsThroughThePuppetsOwnGadget()
    {
        var tracer = TestTracer.Shared;
        string path = Path.Combine(Path.GetTempPath(), $"crisp-puppet-compel-{Environment.ProcessId}");
        File.WriteAllBytes(path, PuppetElf.Build());
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserExecute);
        int pid = Spawn.Start(path, ["puppet"]);
        try
        {
            RemoteSyscallTests.SpinUntil(() => File.ReadAllLines($"/proc/{pid}/maps")[0].StartsWith($"{PuppetElf.BaseAddress:x8}"));
            var p = new Seizer(tracer).SeizeProcess(pid);
            using (var remote = new RemoteTask(p.Leader, gadgetAddress: PuppetElf.SyscallGadgetAddress))
            {
                Assert.Equal(pid, remote.Getpid());
                long addr = remote.Mmap(0, 4096, Mman.PROT_READ | Mman.PROT_WRITE,
                    Mman.MAP_PRIVATE | Mman.MAP_ANONYMOUS);
                Assert.True(addr > 0);
                // The kernel writes into the scratch data page for a pointer argument.
                ulong buf = remote.PutOnScratch(new byte[256]);
                long n = remote.Syscall(Sysno.getcwd, (long)buf, 256);
                Assert.True(n > 0, $"getcwd: {n}");
                var cwd = new byte[n - 1];
                remote.ReadMemory(buf, cwd);
                Assert.Equal(Environment.CurrentDirectory, System.Text.Encoding.UTF8.GetString(cwd));
                Assert.Equal(0, remote.Munmap((ulong)addr, 4096));
            }
            // Only the puppet's own mappings are left.
            Assert.All(File.ReadAllLines($"/proc/{pid}/maps").Skip(2),
                m => Assert.Matches(@"\[(stack|vvar|vvar_vclock|vdso|vsyscall)\]$", m));
            p.Detach();
        }
        finally
        {
            RawSyscall.TryCall(Sysno.kill, pid, 9);
            tracer.Run(() => Spawn.Reap(pid));
            File.Delete(path);
        }
    }
}
