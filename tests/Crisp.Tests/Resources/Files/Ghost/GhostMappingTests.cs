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
    public void DeletedMappedFilesAndADeletedCwdComeBackAsGhosts() =>
        WorkloadRoundTrip.ExpectPass(output, "ghost_map", [], OneGhostEach);

    private static void OneGhostEach(string images, int[] pids)
    {
        var img = ImageDirectory.Open(images);
        var remaps = img.ReadAll<remap_file_path_entry>(ImageFile.RemapFpath);
        // priv, shared, the tmpfs file and the cwd: one ghost each, however many tasks refer to it.
        Assert.Equal(4, remaps.Count);
        Assert.Equal(4, remaps.Select(r => r.RemapId).Distinct().Count());
        // CRIU's name for them: ghost-file-%x (ids here pass 9, so decimal would differ).
        Assert.All(remaps, r => Assert.True(File.Exists(Path.Combine(images, $"ghost-file-{r.RemapId:x}.img")), $"ghost-file-{r.RemapId:x}.img"));
        var modes = remaps.Select(r =>
        {
            using var reader = img.OpenReader(ImageFile.GhostFile(r.RemapId));
            return reader.Read<ghost_file_entry>()!.Mode & 0xf000;
        }).ToList();
        Assert.Single(modes, m => m == 0x4000);
        Assert.Equal(2, pids.Length);
    }
}
