using Crisp.Linux.Proc;
using Crisp.Tests.Hardened;
using Crisp.Tests.Integration;
using Crisp.Tests.Support;

namespace Crisp.Tests.Plugins;

/// <summary>CRIU plugin libraries that crisp must refuse — no CR_PLUGIN_DESC, built for a newer plugin ABI, not a
/// library at all — through the shipped crisp: one line naming the file and why, before the tree is touched.</summary>
[Collection("Hardened")]
public class PluginLibraryTests : IDisposable
{
    private readonly Bench _bench = new();

    public void Dispose() => _bench.Dispose();

    [RootTheory]
    [InlineData("-DNO_DESC", "it exports no CR_PLUGIN_DESC (not a CRIU plugin)")]
    [InlineData("-DABI_VERSION=0x30000", "it is built for plugin ABI 3.0.0, crisp knows up to 0.2.0")]
    [InlineData(null, "cannot load it: ")]
    public void ABadPluginLibraryIsRefusedWithOneLineBeforeTheTreeIsTouched(string? variant, string why)
    {
        string libdir = Path.Combine(_bench.Work, "plugins");
        Directory.CreateDirectory(libdir);
        string library = Path.Combine(libdir, "bad.so");
        if (variant is null)
            File.WriteAllText(library, "not an ELF file\n");
        else
            File.Copy(TestPlugin.Build(variant), library);
        string counter = Path.Combine(_bench.Work, "counter.txt");
        int pid = _bench.Start(Support.Workloads.Build("counter"), ["counter", counter, "50"]);
        Bench.WaitFor(() => Bench.Numbers(counter).Count >= 3, "counter to count");

        var r = Live.Crisp(null, "dump", "-t", pid.ToString(), "-D", _bench.Images, "--libdir", libdir);
        Assert.Equal(1, r.ExitCode);
        FailureSafetyTests.AssertOneLine(r.Stderr, $"plugin {library}: {why}");
        Assert.Equal(0, ProcStatus.Read(pid).TracerPid);
        Bench.WaitCountsOn(counter, "the counter to count on");
    }
}
