using Crisp.Cli.CommandLine;

namespace Crisp.Tests.Cli;

/// <summary>Every option of issue #10 in CRIU's spellings: long and short, "--opt value" and "--opt=value";
/// options crisp does not carry out yet refused by name in one line.</summary>
public class CriuSpellingTests
{
    private static ParsedArguments Parse(params string[] args) => ArgumentParser.Parse(args, CriuOptions.All);

    [Theory]
    [InlineData("tree", "-t", "42")]
    [InlineData("images-dir", "-D", "/tmp/d")]
    [InlineData("work-dir", "-W", "/tmp/w")]
    [InlineData("log-file", "-o", "x.log")]
    [InlineData("timeout", null, "10")]
    [InlineData("freeze-cgroup", null, "/sys/fs/cgroup/x")]
    [InlineData("pidfile", null, "p")]
    [InlineData("status-fd", null, "3")]
    [InlineData("action-script", null, "/bin/true")]
    [InlineData("feature", null, "timerfd")]
    [InlineData("libdir", "-L", "/usr/lib/criu")]
    public void ValueOptionsInEveryForm(string name, string? shortForm, string value)
    {
        Assert.Equal(value, Parse($"--{name}", value).Get(name));
        Assert.Equal(value, Parse($"--{name}={value}").Get(name));
        if (shortForm is not null)
        {
            Assert.Equal(value, Parse(shortForm, value).Get(name));
            Assert.Equal(value, Parse(shortForm + value).Get(name));
        }
    }

    [Theory]
    [InlineData("leave-running", "-R")]
    [InlineData("leave-stopped", "-s")]
    [InlineData("restore-detached", "-d")]
    [InlineData("restore-sibling", "-S")]
    [InlineData("version", "-V")]
    [InlineData("no-default-config", null)]
    [InlineData("display-stats", null)]
    [InlineData("tcp-established", null)]
    [InlineData("all", null)]
    public void FlagsInLongAndShortForm(string name, string? shortForm)
    {
        Assert.True(Parse($"--{name}").Has(name));
        if (shortForm is not null)
            Assert.True(Parse(shortForm).Has(name));
    }

    [Fact]
    public void VerbosityAsCriuTakesIt()
    {
        Assert.Equal("4", Parse("--verbosity=4").Get("verbosity"));
        Assert.Equal("4", Parse("-v4").Get("verbosity"));
        Assert.Equal([null], Parse("-v").GetAll("verbosity"));
    }

    /// <summary>CRIU's getopt_long (not _only): "-verbosity=0" is -v with "erbosity=0", and atoi makes it 0.
    /// Harnesses written for CRIU check features that way.</summary>
    [Theory]
    [InlineData(new[] { "-verbosity=0" }, 0)]
    [InlineData(new[] { "-v4" }, 4)]
    [InlineData(new[] { "--verbosity=3" }, 3)]
    [InlineData(new[] { "-v" }, 3)]
    [InlineData(new[] { "-vvv" }, 5)]
    [InlineData(new[] { "-v", "-v" }, 4)]
    [InlineData(new[] { "-v7x" }, 7)]
    [InlineData(new string[0], 2)]
    public void VerbosityLevelsAsCriuComputesThem(string[] args, int level)
    {
        Assert.Equal(level, Crisp.Cli.Program.Verbosity(Parse(args)));
    }

    /// <summary>Every boolean option of CRIU has its "--no-" twin; the later of the two wins.</summary>
    [Fact]
    public void NoFormsTurnBooleanOptionsOff()
    {
        Assert.False(Parse("--tcp-established", "--no-tcp-established").Has("tcp-established"));
        Assert.True(Parse("--no-shell-job", "--shell-job").Has("shell-job"));
        Assert.False(Parse("--no-link-remap").Has("link-remap"));   // the default, though --link-remap is refused
    }

    /// <summary>What a CRIU harness passes on every dump and changes nothing in what crisp does.</summary>
    [Theory]
    [InlineData("--pre-dump-mode", "splice")]
    [InlineData("--pre-dump-mode=read")]
    [InlineData("--force-irmap")]
    [InlineData("--ghost-fiemap")]
    [InlineData("--no-ghost-fiemap")]
    [InlineData("--irmap-scan-path", "/")]
    [InlineData("--weak-sysctls")]
    [InlineData("--network-lock", "iptables")]
    public void OptionsThatChangeNothingForCrispAreAccepted(params string[] args)
    {
        var parsed = Parse(["dump", .. args]);
        Assert.Equal(["dump"], parsed.Positionals);
    }

    [Fact]
    public void ActionScriptMayBeRepeated()
    {
        Assert.Equal(["/a", "/b"], Parse("--action-script", "/a", "--action-script=/b").GetAll("action-script"));
    }

    [Fact]
    public void ExternalMountsAreTakenInBothSpellings()
    {
        var ctx = new Crisp.Cli.CommandContext(Parse("restore", "--external", "mnt[key]:/host/a", "--ext-mount-map", "other:/host/b", "-r", "/root"), Crisp.Log.Null, TextWriter.Null);
        Assert.Equal(new Dictionary<string, string> { ["key"] = "/host/a", ["other"] = "/host/b" }, ctx.ExternalMounts());
        Assert.Equal("/root", ctx.Args.Get("root"));
        foreach (var bad in new[] { new[] { "--external", "tty[123]:x" }, ["--external", "mnt[]:x"], ["--external", "mnt[]m"] })
            Assert.Throws<UsageException>(() => new Crisp.Cli.CommandContext(Parse(["restore", .. bad]), Crisp.Log.Null, TextWriter.Null).ExternalMounts());
    }

    [Theory]
    [InlineData(new[] { "--ext-mount-map", "auto" }, false, false)]
    [InlineData(new[] { "--external", "mnt[]" }, false, false)]
    [InlineData(new[] { "--external", "mnt[]:" }, false, false)]
    [InlineData(new[] { "--external", "mnt[]:m" }, true, false)]
    [InlineData(new[] { "--external", "mnt[]:sm" }, true, true)]
    [InlineData(new[] { "--ext-mount-map", "auto", "--enable-external-sharing" }, false, true)]
    [InlineData(new[] { "--external", "mnt[]:s", "--enable-external-masters", "--external", "mnt[/a]:k" }, true, true)]
    public void AutodetectedExternalMountsTakeTheirFlagsInBothSpellings(string[] args, bool masters, bool sharing)
    {
        var ctx = new Crisp.Cli.CommandContext(Parse(["dump", .. args]), Crisp.Log.Null, TextWriter.Null);
        Assert.Equal(new Crisp.Resources.Mounts.AutoExternalMounts(masters, sharing), ctx.AutoExternalMounts());
        Assert.DoesNotContain("", ctx.ExternalMounts().Keys);
    }

    [Fact]
    public void TheExternalMountFlagsAloneAskForNoAutodetection()
    {
        var ctx = new Crisp.Cli.CommandContext(Parse("dump", "--enable-external-masters", "--enable-external-sharing", "--external", "mnt[/a]:k"), Crisp.Log.Null, TextWriter.Null);
        Assert.Null(ctx.AutoExternalMounts());
        Assert.Equal(new Dictionary<string, string> { ["/a"] = "k" }, ctx.ExternalMounts());
    }

    [Theory]
    [InlineData("--config=/etc/criu.conf", "config")]
    public void UnsupportedOptionsAreRefusedByName(string arg, string name)
    {
        var e = Assert.Throws<UsageException>(() => Parse("dump", arg));
        Assert.Equal($"option --{name} is not supported by crisp yet", e.Message);
    }

    [Theory]
    [InlineData(new[] { "dump", "--manage-cgroups=bogus", "-t", "1", "-D", "/tmp" }, "crisp: --manage-cgroups=bogus: unknown cgroups mode (none, props, soft, full, strict or ignore)")]
    [InlineData(new[] { "restore", "--manage-cgroups=soft,full", "-D", "/tmp" }, "crisp: --manage-cgroups=soft,full: unknown cgroups mode (none, props, soft, full, strict or ignore)")]
    [InlineData(new[] { "dump", "--external", "tty[1]:x", "-t", "1", "-D", "/tmp" }, "crisp: --external tty[1]:x: crisp takes only mnt[PATH]:KEY and net[INODE]:KEY yet")]
    [InlineData(new[] { "dump", "--external", "mnt[]:x", "-t", "1", "-D", "/tmp" }, "crisp: --external mnt[]:x: mnt[] takes the flags m (external masters) and s (external sharing), as mnt[]:ms")]
    [InlineData(new[] { "dump", "--external", "mnt[/a]:", "-t", "1", "-D", "/tmp" }, "crisp: bad external mount 'mnt[/a]:': both sides must be given (mnt[A]:B)")]
    [InlineData(new[] { "restore", "--empty-ns", "mnt", "-D", "/tmp" }, "crisp: --empty-ns mnt: only net can be made empty")]
    [InlineData(new[] { "restore", "--inherit-fd", "fd1:x", "-D", "/tmp" }, "crisp: bad --inherit-fd 'fd1:x': fd[N]:KEY, e.g. fd[3]:pipe:[12345]")]
    [InlineData(new[] { "dump", "--tre=5", "--bogus-option" }, "crisp: unknown option --bogus-option")]
    [InlineData(new[] { "dump", "--ext", "x" }, "crisp: option --ext is ambiguous (--ext-unix-sk, --external, --ext-mount-map, --extra)")]
    [InlineData(new[] { "restore", "-D", "/tmp", "--restore-sibling" }, "crisp: --restore-sibling only makes sense with --restore-detached")]
    [InlineData(new[] { "dump", "-t", "1", "-D", "/tmp", "--status-fd", "987" }, "crisp: --status-fd 987 is not an open descriptor")]
    [InlineData(new[] { "dump", "-t", "1", "-D", "/tmp", "--timeout", "soon" }, "crisp: option --timeout needs a number, got 'soon'")]
    public void CliRefusesWithOneLineAndExitOne(string[] args, string line)
    {
        var r = Support.CrispCli.Run(args);
        Assert.Equal(1, r.ExitCode);
        Assert.Equal(line, r.Stderr.Trim());
        Assert.Equal("", r.Stdout);
    }

    [Fact]
    public void VersionPrintsCriuStyleLine()
    {
        var r = Support.CrispCli.Run("-V");
        Assert.Equal(0, r.ExitCode);
        Assert.StartsWith("Version: ", r.Stdout);
        Assert.Equal(0, Support.CrispCli.Run("--version").ExitCode);
    }

    [Fact]
    public void MissingWorkDirIsOneLine()
    {
        var r = Support.CrispCli.Run("restore", "-d", "-D", "/tmp", "-W", "/no/such/work/dir");
        Assert.Equal(1, r.ExitCode);
        Assert.Equal("crisp: Can't change directory to /no/such/work/dir: No such file or directory", r.Stderr.Trim());
    }
}
