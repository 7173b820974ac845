using System.Diagnostics;
using System.Text.Json;
using Crisp.Dump;
using Crisp.Images;
using Crisp.Linux;
using Crisp.Linux.Proc;
using Crisp.Tests.Support;

namespace Crisp.Tests.Resources.Memory;

[Collection("compel")]
public sealed class MemoryDumpTests
{
    [RootFact]
    public void DumpStoresExactlyThePresentPrivatePagesAndLeavesTheWorkloadIntact()
    {
        using var w = MemWorkload.Start();
        var state = TaskStateSnapshot.OfQuietTree(w.Pid);
        new Dumper(new DumpOptions { RootPid = w.Pid, ImagesDir = w.ImagesDir, LeaveRunning = true }, Log.Null).Run();
        StateDiff.AssertRestored(state, when: "after dump --leave-running");

        var images = ImageDirectory.Open(w.ImagesDir);
        var mm = images.ReadAll<Crisp.Images.Proto.mm_entry>(ImageFile.Mm(w.Pid)).Single();
        var maps = ProcMaps.Read(w.Pid);
        // Every VMA is recorded (the scratch pages are gone again after --leave-running).
        Assert.Equal(VvarJoined(maps), mm.Vmas.Select(v => (v.Start, v.End)));
        Assert.Contains(mm.Vmas, v => (v.Status & (1u << 8)) != 0);    // VMA_ANON_SHARED
        Assert.Contains(mm.Vmas, v => (v.Status & (1u << 6)) != 0);    // VMA_FILE_PRIVATE
        Assert.Contains(mm.Vmas, v => (v.Status & (1u << 5)) != 0);    // VMA_AREA_HEAP
        Assert.Contains(mm.Vmas, v => (v.Status & (1u << 12)) != 0);   // VMA_AREA_VVAR
        Assert.NotEqual(0UL, mm.MmBrk);
        Assert.NotEmpty(mm.MmSavedAuxv);

        using (var reader = images.OpenPagemap(w.Pid))
            Assert.Equal(ExpectedPrivatePages(w.Pid, maps), reader.PresentPages);

        foreach (var name in new[] { $"mm-{w.Pid}.img", $"pagemap-{w.Pid}.img", "files.img" })
            CritShow(Path.Combine(w.ImagesDir, name));
        Assert.Single(Directory.GetFiles(w.ImagesDir, "pagemap-shmem-*.img"));

        w.Signal(MemWorkload.SIGUSR1);
        var status = Spawn.Reap(w.Pid);
        Assert.True(status.Exited && status.ExitCode == 0, $"{status}; stderr:\n{w.Stderr}");
    }

    /// <summary>What pagemap says a dump must store: present or swapped pages of private anonymous VMAs,
    /// and of private file VMAs only those that are anonymous copies.</summary>
    private static long ExpectedPrivatePages(int pid, List<MapsEntry> maps)
    {
        using var pagemap = Pagemap.Open(pid);
        long count = 0;
        foreach (var m in maps)
        {
            if (m.Shared || m.Kind is VmaKind.Vvar or VmaKind.VvarVclock or VmaKind.Vsyscall)
                continue;
            foreach (var raw in pagemap.ReadEntries(m.Start, m.End))
            {
                var e = new PagemapEntry(raw);
                if (e.HasData && !(m.Kind == VmaKind.File && e.FileOrSharedAnon))
                    count++;
            }
        }
        return count;
    }

    /// <summary>The maps ranges with [vvar] and [vvar_vclock] as one, as CRIU's images (and crisp's) hold them.</summary>
    private static List<(ulong, ulong)> VvarJoined(List<MapsEntry> maps)
    {
        var ranges = new List<(ulong Start, ulong End)>();
        for (int i = 0; i < maps.Count; i++)
        {
            bool vvar = maps[i].Kind is VmaKind.Vvar or VmaKind.VvarVclock;
            if (vvar && i > 0 && maps[i - 1].Kind is VmaKind.Vvar or VmaKind.VvarVclock && ranges[^1].End == maps[i].Start)
                ranges[^1] = (ranges[^1].Start, maps[i].End);
            else
                ranges.Add((maps[i].Start, maps[i].End));
        }
        return [.. ranges.Select(r => (r.Start, r.End))];
    }

    internal static JsonDocument CritShow(string image)
    {
        var psi = new ProcessStartInfo("/usr/bin/crit", ["show", image]) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var crit = Process.Start(psi)!;
        string output = crit.StandardOutput.ReadToEnd();
        string errors = crit.StandardError.ReadToEnd();
        crit.WaitForExit();
        Assert.True(crit.ExitCode == 0, $"crit show {image}: {errors}");
        return JsonDocument.Parse(output);
    }
}
