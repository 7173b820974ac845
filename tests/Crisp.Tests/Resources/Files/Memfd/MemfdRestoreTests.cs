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
    [RootFact]
    public void MemfdsComeBackWithContentsSealsAndCoherentMappings()
    {
        using var w = new DirWorkload("crisp-memfd-");
        w.Start(Support.Workloads.Build("memfd_state"), []);
        w.WaitReady("memfd_state");
        int pid = w.Pid;
        RestoredTree? tree = null;
        for (int cycle = 0; cycle < 2; cycle++)
        {
            string images = w.NewImagesDir($"images{cycle}");
            w.Dump(new DumpOptions { RootPid = pid, ImagesDir = images, ShellJob = true });
            // CRIU's format, readable by crit: five inodes with their names and seals.
            var inodes = Crit.Decode(Path.Combine(images, "memfd.img")).GetProperty("entries").EnumerateArray().ToList();
            Assert.Equal(["crisp-a", "crisp-b", "crisp-c", "crisp-d", "crisp-e"],
                inodes.Select(i => i.GetProperty("name").GetString()!).Order());
            while (Directory.Exists($"/proc/{pid}"))
                Thread.Sleep(20);
            tree = w.Restore(new RestoreOptions { ImagesDir = images, ShellJob = true, Detached = true });
            Assert.Contains("/memfd:crisp-b (deleted)", File.ReadAllText($"/proc/{pid}/maps"));
        }
        w.SignalAndExpectPass(tree!);
    }
}
