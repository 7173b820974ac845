using Crisp.Linux.Proc;

namespace Crisp.Tests.Linux;

public class ProcMapsTests
{
    private const string Sample =
        "55d4044de000-55d4044e0000 r--p 00000000 fe:00 247629                     /usr/bin/head\n" +
        "55d405000000-55d405021000 rw-p 00000000 00:00 0                          [heap]\n" +
        "7f1000000000-7f1000001000 rw-s 00001000 00:01 1057                       /memfd:crisp (deleted)\n" +
        "7f1000001000-7f1000003000 r-xp 00002000 08:11 99                         /tmp/dir with spaces/lib x.so\n" +
        "7f1000003000-7f1000004000 rw-p 00000000 08:11 100                        /tmp/gone file (deleted)\n" +
        "7f1000004000-7f1000005000 ---p 00000000 00:00 0 \n" +
        "7f1000005000-7f1000006000 rw-p 00000000 00:00 0                          [anon:dotnet-gc]\n" +
        "7f138c632000-7f138c634000 r--p 00000000 00:00 0                          [vvar]\n" +
        "7f138c634000-7f138c636000 r--p 00000000 00:00 0                          [vvar_vclock]\n" +
        "7f138c636000-7f138c638000 r-xp 00000000 00:00 0                          [vdso]\n" +
        "7fff104eb000-7fff1050c000 rw-p 00000000 00:00 0                          [stack]\n" +
        "ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]\n";

    [Fact]
    public void ParsesFieldsAndClassifies()
    {
        var maps = ProcMaps.Parse(Sample);
        Assert.Equal(12, maps.Count);

        var exe = maps[0];
        Assert.Equal(0x55d4044de000UL, exe.Start);
        Assert.Equal(0x55d4044e0000UL, exe.End);
        Assert.Equal(0x2000UL, exe.Length);
        Assert.Equal(VmaProt.Read, exe.Prot);
        Assert.False(exe.Shared);
        Assert.Equal(0xfeu, exe.DevMajor);
        Assert.Equal(0u, exe.DevMinor);
        Assert.Equal(247629UL, exe.Inode);
        Assert.Equal("/usr/bin/head", exe.Path);
        Assert.Equal(VmaKind.File, exe.Kind);

        Assert.Equal(VmaKind.Heap, maps[1].Kind);

        var memfd = maps[2];
        Assert.True(memfd.Shared);
        Assert.True(memfd.Deleted);
        Assert.True(memfd.IsMemfd);
        Assert.Equal("/memfd:crisp", memfd.Path);
        Assert.Equal(0x1000UL, memfd.Offset);

        Assert.Equal("/tmp/dir with spaces/lib x.so", maps[3].Path);
        Assert.Equal(VmaProt.Read | VmaProt.Exec, maps[3].Prot);
        Assert.Equal(8u, maps[3].DevMajor);
        Assert.Equal(0x11u, maps[3].DevMinor);
        Assert.False(maps[3].Deleted);

        Assert.Equal("/tmp/gone file", maps[4].Path);
        Assert.True(maps[4].Deleted);

        Assert.Equal(VmaKind.Anonymous, maps[5].Kind);
        Assert.Equal(VmaProt.None, maps[5].Prot);
        Assert.Equal(VmaKind.Special, maps[6].Kind);
        Assert.Equal(VmaKind.Vvar, maps[7].Kind);
        Assert.Equal(VmaKind.VvarVclock, maps[8].Kind);
        Assert.Equal(VmaKind.Vdso, maps[9].Kind);
        Assert.Equal(VmaKind.Stack, maps[10].Kind);
        Assert.Equal(VmaKind.Vsyscall, maps[11].Kind);
        Assert.Equal(0xffffffffff601000UL, maps[11].End);
    }

    [Fact]
    public void ToStringRoundTrips()
    {
        foreach (var e in ProcMaps.Parse(Sample))
            Assert.Equal(e, ProcMaps.ParseLine(e.ToString()));
    }

    [Fact]
    public void ReadsSelf()
    {
        var maps = ProcMaps.Read(Environment.ProcessId);
        Assert.Contains(maps, m => m.Kind == VmaKind.Stack);
        Assert.Contains(maps, m => m.Kind == VmaKind.Vdso);
        string exe = Path.GetFileName(Environment.ProcessPath!);
        Assert.Contains(maps, m => m.Kind == VmaKind.File && Path.GetFileName(m.Path) == exe);
        for (int i = 1; i < maps.Count; i++)
            Assert.True(maps[i - 1].End <= maps[i].Start);
    }

    private const string SmapsSample =
        "7f1000001000-7f1000003000 r-xp 00002000 08:11 99                         /tmp/dir with spaces/lib x.so\n" +
        "Size:                  8 kB\n" +
        "KernelPageSize:        4 kB\n" +
        "Rss:                   8 kB\n" +
        "Pss:                   4 kB\n" +
        "Anonymous:             0 kB\n" +
        "Swap:                  0 kB\n" +
        "THPeligible:           0\n" +
        "VmFlags: rd ex mr mw me \n" +
        "7fff104eb000-7fff1050c000 rw-p 00000000 00:00 0                          [stack]\n" +
        "Size:                132 kB\n" +
        "Rss:                  12 kB\n" +
        "Pss:                  12 kB\n" +
        "Anonymous:            12 kB\n" +
        "Swap:                  4 kB\n" +
        "SwapPss:               4 kB\n" +
        "VmFlags: rd wr mr mw me gd ac \n";

    [Fact]
    public void ParsesSmaps()
    {
        var smaps = ProcSmaps.Parse(SmapsSample);
        Assert.Equal(2, smaps.Count);
        Assert.Equal("/tmp/dir with spaces/lib x.so", smaps[0].Vma.Path);
        Assert.Equal(8192UL, smaps[0].Rss);
        Assert.Equal(4096UL, smaps[0].Pss);
        Assert.Equal(0UL, smaps[0].Get("THPeligible"));
        Assert.True(smaps[0].HasFlag("ex"));
        Assert.False(smaps[0].HasFlag("wr"));
        Assert.Equal(VmaKind.Stack, smaps[1].Vma.Kind);
        Assert.Equal(12 * 1024UL, smaps[1].Anonymous);
        Assert.Equal(4096UL, smaps[1].Swap);
        Assert.Equal(4096UL, smaps[1].SwapPss);
        Assert.True(smaps[1].HasFlag("gd"));
        Assert.Equal(7, smaps[1].VmFlags.Count);
    }

    [Fact]
    public void SmapsOfSelfJoinsMaps()
    {
        var maps = ProcMaps.Read(0);
        var smaps = ProcSmaps.Read(0);
        var joined = ProcSmaps.Join(maps, smaps);
        var stack = joined.Single(j => j.Vma.Kind == VmaKind.Stack);
        Assert.NotNull(stack.Smaps);
        Assert.True(stack.Smaps!.HasFlag("gd"));
        Assert.True(stack.Smaps.Rss > 0);
        // Most VMAs are stable between the two reads.
        Assert.True(joined.Count(j => j.Smaps is not null) > maps.Count / 2);
    }
}
