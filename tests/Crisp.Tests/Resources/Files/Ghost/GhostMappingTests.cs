using Crisp.Dump;
using Crisp.Images;
using Crisp.Images.Proto;
using Crisp.Tests.Integration;
using Crisp.Tests.Support;
using Xunit.Abstractions;

namespace Crisp.Tests.Resources.Files.Ghost;

/// <summary>ghost_map: deleted files kept only by mappings (private with a private copy of a page, shared
/// between a task and its child, read-only on tmpfs) and a deleted cwd of both tasks. Each is dumped as
/// CRIU does (a REG entry remapped to a ghost in remap-fpath.img); after restore the workload checks the
/// contents, the "(deleted)" names, the sharing and the cwd itself.</summary>
public class GhostMappingTests(ITestOutputHelper output)
{
    [RootFact]
    public void DeletedMappedFilesAndADeletedCwdComeBackAsGhosts()
    {
        string exe = Support.Workloads.Build("ghost_map");
        using var dir = new Live.TempDir();
        var w = Workload.Start(exe, ["ghost_map", dir.Path], dir.Path);
        var parts = w.WaitReady("ghost_map's ready line", p => p.Length == 3);
        int[] pids = [w.Pid, int.Parse(parts[2])];
        try
        {
            string images = Path.Combine(dir.Path, "img");
            var tree = Live.Cycle(output, new DumpOptions { RootPid = w.Pid, ImagesDir = images }, pids, written =>
            {
                var img = ImageDirectory.Open(written);
                var remaps = img.ReadAll<remap_file_path_entry>(ImageFile.RemapFpath);
                // priv, shared, the tmpfs file and the cwd: one ghost each, however many tasks refer to it.
                Assert.Equal(4, remaps.Count);
                Assert.Equal(4, remaps.Select(r => r.RemapId).Distinct().Count());
                var ghosts = remaps.Select(r =>
                {
                    using var reader = img.OpenReader(ImageFile.GhostFile(r.RemapId));
                    return reader.Read<ghost_file_entry>()!;
                }).ToList();
                Assert.Single(ghosts, g => (g.Mode & 0xf000) == 0x4000);
            });
            Assert.False(File.Exists(Path.Combine(dir.Path, "priv")), "a ghost must not keep a name");
            Assert.False(Directory.Exists(Path.Combine(dir.Path, "gone")), "a ghost directory must not keep a name");
            Live.SignalAndExpectPass(w.Pid, dir.Path, () => Live.ExitCodeWithin(tree));
        }
        finally
        {
            Live.KillAll(pids, w.Pid);
        }
    }
}
