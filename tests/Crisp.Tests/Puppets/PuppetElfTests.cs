using System.Diagnostics;
using Crisp.Compel.Puppets;

namespace Crisp.Tests.Puppets;

public class PuppetElfTests
{
    [Fact]
    public void PuppetSleepsWithOnlyItsTextPageMapped()
    {
        using var p = Start(PuppetElf.Build(), out string path);
        try
        {
            Thread.Sleep(200);
            Assert.False(p.HasExited, "puppet exited instead of waiting to be seized");
            string stat = File.ReadAllText($"/proc/{p.Id}/stat");
            Assert.Equal('S', stat[stat.LastIndexOf(')') + 2]);   // asleep in nanosleep, not spinning
            Assert.Equal("35", File.ReadAllText($"/proc/{p.Id}/syscall").Split(' ')[0]);
            var maps = File.ReadAllLines($"/proc/{p.Id}/maps");
            Assert.StartsWith($"{PuppetElf.BaseAddress:x8}-{PuppetElf.BaseAddress + 0x1000:x8} r-xp", maps[0]);
            Assert.StartsWith($"{PuppetElf.DataAddress:x8}-{PuppetElf.End:x8} rw-p", maps[1]);
            // Text and data pages, stack, vvar(s), vdso — nothing else (no heap, no libraries).
            Assert.All(maps.Skip(2), m => Assert.Matches(@"\[(stack|vvar|vvar_vclock|vdso|vsyscall)\]$", m));
        }
        finally
        {
            if (!p.HasExited)
                p.Kill();
            p.WaitForExit();
            File.Delete(path);
        }
    }

    /// <summary>A puppet nobody seizes (crisp died right after spawning it) ends by itself, exit status 1.</summary>
    [Fact]
    public void AnUnseizedPuppetExitsByItself()
    {
        using var p = Start(PuppetElf.Build(unseizedLifetimeSeconds: 1), out string path);
        try
        {
            Assert.True(p.WaitForExit(TimeSpan.FromSeconds(20)), "the unseized puppet is still there");
            Assert.Equal(1, p.ExitCode);
        }
        finally
        {
            if (!p.HasExited)
                p.Kill();
            File.Delete(path);
        }
    }

    private static Process Start(byte[] image, out string path)
    {
        path = Path.Combine(Path.GetTempPath(), $"crisp-puppet-{Environment.ProcessId}-{Guid.NewGuid():N}");
        File.WriteAllBytes(path, image);
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserExecute);
        // Not traced, so System.Diagnostics.Process is fine here.
        return Process.Start(new ProcessStartInfo(path) { UseShellExecute = false })!;
    }
}
