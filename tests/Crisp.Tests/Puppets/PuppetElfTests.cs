using System.Diagnostics;
using Crisp.Compel.Puppets;

namespace Crisp.Tests.Puppets;

public class PuppetElfTests
{
    [Fact]
    public void PuppetRunsSpinningWithOnlyItsTextPageMapped()
    {
        string path = Path.Combine(Path.GetTempPath(), $"crisp-puppet-{Environment.ProcessId}");
        File.WriteAllBytes(path, PuppetElf.Build());
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserExecute);
        // Not traced, so System.Diagnostics.Process is fine here.
        using var p = Process.Start(new ProcessStartInfo(path) { UseShellExecute = false })!;
        try
        {
            Thread.Sleep(200);
            Assert.False(p.HasExited, "puppet exited instead of spinning");
            string stat = File.ReadAllText($"/proc/{p.Id}/stat");
            Assert.Equal('R', stat[stat.LastIndexOf(')') + 2]);
            var maps = File.ReadAllLines($"/proc/{p.Id}/maps");
            Assert.StartsWith($"{PuppetElf.BaseAddress:x8}-{PuppetElf.BaseAddress + 0x1000:x8} r-xp", maps[0]);
            Assert.StartsWith($"{PuppetElf.DataAddress:x8}-{PuppetElf.End:x8} rw-p", maps[1]);
            // Text and data pages, stack, vvar(s), vdso — nothing else (no heap, no libraries).
            Assert.All(maps.Skip(2), m => Assert.Matches(@"\[(stack|vvar|vvar_vclock|vdso|vsyscall)\]$", m));
        }
        finally
        {
            p.Kill();
            p.WaitForExit();
            File.Delete(path);
        }
    }
}
