using Crisp.Tests.Integration;
using Crisp.Dump;
using Crisp.Linux;
using Crisp.Restore;
using Crisp.Tests.Images;
using Crisp.Tests.Support;

namespace Crisp.Tests.Resources.Files.Memfd;

/// <summary>memfds dumped and restored twice, then checked by the workload itself
/// (tests/workloads/memfd_state.c): names, sizes, contents, seals, positions; a memfd mapped twice with
/// different protections, one only mapped (fd closed), one mapped privately with a copied page; and the
/// mapping and the fd of a memfd see each other's writes after restore.</summary>
public class MemfdRestoreTests
{
    private const int SIGUSR1 = 10, SIGKILL = 9;

    [RootFact]
    public void MemfdsComeBackWithContentsSealsAndCoherentMappings()
    {
        string dir = Directory.CreateTempSubdirectory("crisp-memfd-").FullName;
        string exe = Support.Workloads.Build("memfd_state");
        int pid = Spawn.Start(exe, [exe, dir], new SpawnOptions
        {
            Opens = [(0, "/dev/null", FileIo.O_RDONLY, 0), (1, "/dev/null", FileIo.O_WRONLY, 0), (2, "/dev/null", FileIo.O_WRONLY, 0)],
        });
        bool alive = true;
        try
        {
            var deadline = DateTime.UtcNow.AddSeconds(20);
            while (!File.Exists(Path.Combine(dir, "ready")))
            {
                Assert.True(DateTime.UtcNow < deadline, "memfd_state did not get ready");
                Assert.Null(Spawn.TryReap(pid));
                Thread.Sleep(10);
            }
            RestoredTree? tree = null;
            for (int cycle = 0; cycle < 2; cycle++)
            {
                string images = Path.Combine(dir, $"images{cycle}");
                Directory.CreateDirectory(images);
                new Dumper(new DumpOptions { RootPid = pid, ImagesDir = images, ShellJob = true }, Log.Null).Run();
                try { Spawn.Reap(pid); } catch (SyscallException) { }
                alive = false;
                // CRIU's format, readable by crit: five inodes with their names and seals.
                var inodes = Crit.Decode(Path.Combine(images, "memfd.img")).GetProperty("entries").EnumerateArray().ToList();
                Assert.Equal(["crisp-a", "crisp-b", "crisp-c", "crisp-d", "crisp-e"],
                    inodes.Select(i => i.GetProperty("name").GetString()!).Order());
                while (Directory.Exists($"/proc/{pid}"))
                    Thread.Sleep(20);
                tree = new Restorer(new RestoreOptions { ImagesDir = images, ShellJob = true, Detached = true }, Log.Null).Run();
                alive = true;
                Assert.Equal(pid, tree.RootPid);
                Assert.Contains("/memfd:crisp-b (deleted)", File.ReadAllText($"/proc/{pid}/maps"));
            }
            RawSyscall.Call("kill", Sysno.kill, pid, SIGUSR1);
            int rc = Live.ExitCodeWithin(tree!);
            alive = false;
            string verdict = File.Exists(Path.Combine(dir, "verdict")) ? File.ReadAllText(Path.Combine(dir, "verdict")) : "(no verdict)";
            Assert.True(rc == 0, $"exit {rc}: {verdict}");
            Assert.Equal("PASS", verdict.Trim());
        }
        finally
        {
            if (alive)
            {
                RawSyscall.TryCall(Sysno.kill, pid, SIGKILL);
                try { Spawn.Reap(pid); } catch (SyscallException) { }
            }
            Directory.Delete(dir, recursive: true);
        }
    }
}
