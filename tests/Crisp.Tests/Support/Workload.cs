using Crisp.Linux;
using Crisp.Tests.Integration;

namespace Crisp.Tests.Support;

/// <summary>A workload started with posix_spawn as our child in its own session: stdin /dev/null, stdout and
/// stderr in the files "out" and "err" of <see cref="Dir"/>, so nothing outside the tree has to survive a
/// checkpoint and the test reads the ready line and verdict from files.</summary>
internal sealed record Workload(int Pid, string Dir)
{
    private const int Created = Live.O_WRONLY | Live.O_CREAT | Live.O_TRUNC, Mode = 0x1a4;

    public string OutFile => Path.Combine(Dir, "out");
    public string ErrFile => Path.Combine(Dir, "err");
    public string Out => File.ReadAllText(OutFile);
    public string Err => File.Exists(ErrFile) ? File.ReadAllText(ErrFile) : "";

    /// <summary>Starts <paramref name="exe"/> with <paramref name="argv"/>; with <paramref name="stderrToFile"/> false
    /// its stderr is /dev/null (no "err" file).</summary>
    public static Workload Start(string exe, IReadOnlyList<string> argv, string dir, bool stderrToFile = true)
    {
        int pid = Spawn.Start(exe, argv, new SpawnOptions
        {
            NewSession = true,
            Opens =
            [
                (0, "/dev/null", Live.O_RDONLY, 0),
                (1, Path.Combine(dir, "out"), Created, Mode),
                stderrToFile ? (2, Path.Combine(dir, "err"), Created, Mode) : (2, "/dev/null", Live.O_WRONLY, 0),
            ],
        });
        return new Workload(pid, dir);
    }

    /// <summary>Waits at most <paramref name="within"/> (default 20 s) for the first line of "out" to start with
    /// <paramref name="prefix"/>, or for the workload to exit (reaped then, so its line fails the check). Returns
    /// the line's words; <paramref name="valid"/>, if given, must accept them.</summary>
    public string[] WaitReady(string what, Func<string[], bool>? valid = null, TimeSpan? within = null, string prefix = "ready ")
    {
        string line = "";
        Live.WaitFor(() => (line = Out.Split('\n')[0]).StartsWith(prefix) || Spawn.TryReap(Pid) is not null,
            what, within ?? TimeSpan.FromSeconds(20));
        var words = line.Split(' ');
        if (valid is not null)
            Assert.True(valid(words), $"bad ready line '{line}', stderr: {Err}");
        return words;
    }
}
