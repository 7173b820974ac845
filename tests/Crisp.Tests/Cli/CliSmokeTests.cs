using Crisp.Tests.Support;

namespace Crisp.Tests.Cli;

public class CliSmokeTests
{
    [Fact]
    public void HelpExitsZero()
    {
        var r = CrispCli.Run("--help");
        Assert.Equal(0, r.ExitCode);
        Assert.Contains("crisp", r.Stdout);
    }
}
