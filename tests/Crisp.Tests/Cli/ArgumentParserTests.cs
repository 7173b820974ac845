using Crisp.Cli.CommandLine;

namespace Crisp.Tests.Cli;

public class ArgumentParserTests
{
    private static ParsedArguments Parse(params string[] args) => ArgumentParser.Parse(args, CriuOptions.All);

    [Fact]
    public void LongOptionsTakeSeparateOrAttachedValues()
    {
        var a = Parse("dump", "--tree", "123", "--images-dir=/tmp/x", "--log-file", "d.log");
        Assert.Equal(["dump"], a.Positionals);
        Assert.Equal("123", a.Get("tree"));
        Assert.Equal("/tmp/x", a.Get("images-dir"));
        Assert.Equal("d.log", a.Get("log-file"));
    }

    [Fact]
    public void ShortOptionsBundleAndAttach()
    {
        var a = Parse("-t123", "-D", "dir", "dump", "-Rv4");
        Assert.Equal("123", a.Get("tree"));
        Assert.Equal("dir", a.Get("images-dir"));
        Assert.True(a.Has("leave-running"));
        Assert.Equal("4", a.Get("verbosity"));
        Assert.Equal(["dump"], a.Positionals);
    }

    [Fact]
    public void OptionalArgumentIsOnlyTakenWhenAttached()
    {
        var a = Parse("-v", "dump", "--verbosity", "restore");
        Assert.Equal([null, null], a.GetAll("verbosity"));
        Assert.Equal(["dump", "restore"], a.Positionals);
        Assert.Equal("4", Parse("--verbosity=4").Get("verbosity"));
        Assert.Equal("vv", Parse("-vvv").Get("verbosity"));
    }

    [Fact]
    public void UniquePrefixesAreAcceptedAmbiguousOnesAreNot()
    {
        Assert.Equal("5", Parse("--tre", "5").Get("tree"));
        var e = Assert.Throws<UsageException>(() => Parse("--re"));
        Assert.Contains("ambiguous", e.Message);
    }

    [Fact]
    public void DoubleDashEndsOptions()
    {
        var a = Parse("show", "--", "-weird-name.img");
        Assert.Equal(["show", "-weird-name.img"], a.Positionals);
    }

    [Theory]
    [InlineData("--no-such-thing", "unknown option --no-such-thing")]
    [InlineData("-Z", "unknown option -Z")]
    [InlineData("--tree", "option --tree requires an argument")]
    [InlineData("--leave-running=yes", "option --leave-running doesn't allow an argument")]
    public void BadOptionsGetOneClearMessage(string arg, string message)
    {
        var e = Assert.Throws<UsageException>(() => Parse(arg));
        Assert.Equal(message, e.Message);
    }

    [Fact]
    public void CliRefusesUnknownOptionWithOneLine()
    {
        var r = Support.CrispCli.Run("dump", "--bogus");
        Assert.Equal(1, r.ExitCode);
        Assert.Equal("crisp: unknown option --bogus", r.Stderr.Trim());
    }
}
