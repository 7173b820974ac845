using System.Diagnostics;
using Xunit.Abstractions;
using Crisp.Tests.Integration;
using Crisp.Tests.Migration;
using Crisp.Tests.Support;

namespace Crisp.Tests.Linux;

/// <summary>The shipped CLI backs the GC heap it allocates from first with transparent huge pages (HugeNursery):
/// read from the smaps of a running `crisp page-server`.</summary>
public class HugeNurseryTests(ITestOutputHelper output)
{
    private sealed record Vma(ulong Start, ulong End, string Path, long AnonHugeKiB, string[] Flags);

    [Fact]
    public void TheCliAllocatesFromAHugePageOfItsGcHeapAndOnlyThere()
    {
        bool thp = !File.ReadAllText("/sys/kernel/mm/transparent_hugepage/enabled").Contains("[never]");
        string dir = Directory.CreateTempSubdirectory("crisp-nursery").FullName;
        int port = PageServerTests.FreePort();
        var psi = new ProcessStartInfo(CrispCli.Exe) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var a in new[] { "page-server", "--address", "127.0.0.1", "--port", port.ToString(), "-D", dir })
            psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        try
        {
            string hexPort = $":{port:X4} ";
            Live.WaitFor(() => p.HasExited || File.ReadLines("/proc/net/tcp").Any(l => l.Contains(hexPort)), "the page server to listen", TimeSpan.FromSeconds(20));
            Assert.False(p.HasExited, "page-server exited");
            var vmas = Smaps(p.Id);
            var huge = vmas.Where(v => v.Flags.Contains("hg")).ToList();
            foreach (var v in huge)
                output.WriteLine($"{v.Start:x}-{v.End:x} '{v.Path}' AnonHugePages {v.AnonHugeKiB} kB, flags {string.Join(' ', v.Flags)}");
            if (!thp)
            {
                Assert.DoesNotContain(huge, v => v.AnonHugeKiB > 0);
                return;
            }
            // One stretch of the GC's anonymous reservation, 2 MiB aligned, a huge page in it already (the collapse),
            // and nothing else marked: no file, no stack, no other mapping.
            var nursery = Assert.Single(huge);
            Assert.Equal("", nursery.Path);
            Assert.Equal(0UL, nursery.Start % (2 << 20));
            Assert.Equal(4UL << 20, nursery.End - nursery.Start);
            Assert.True(nursery.AnonHugeKiB >= 2048, $"no huge page in the nursery: {nursery.AnonHugeKiB} kB");
            var next = vmas.First(v => v.Start == nursery.End);
            Assert.Equal("", next.Path);   // the GC's reservation goes on after it
        }
        finally
        {
            if (!p.HasExited)
                p.Kill();
            p.WaitForExit();
            Directory.Delete(dir, true);
        }
    }

    private static List<Vma> Smaps(int pid)
    {
        var list = new List<Vma>();
        ulong start = 0, end = 0;
        string path = "";
        long anonHuge = 0;
        foreach (string line in File.ReadLines($"/proc/{pid}/smaps"))
        {
            var f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (f.Length >= 5 && f[0].Contains('-') && !f[0].EndsWith(':'))
            {
                var r = f[0].Split('-');
                start = Convert.ToUInt64(r[0], 16);
                end = Convert.ToUInt64(r[1], 16);
                path = f.Length > 5 ? string.Join(' ', f[5..]) : "";
                anonHuge = 0;
            }
            else if (f[0] == "AnonHugePages:")
                anonHuge = long.Parse(f[1]);
            else if (f[0] == "VmFlags:")
                list.Add(new Vma(start, end, path, anonHuge, f[1..]));
        }
        return list;
    }
}
