using Crisp.Linux;

namespace Crisp.Bench;

/// <summary>Runs the crisp CLI as a grandchild through peak_rss (bench/workloads/peak_rss.c), which reports its peak
/// resident memory from wait4's rusage (ru_maxrss): what `/usr/bin/time -f %M crisp …` shows, and what counts
/// inside a container's memory limit.</summary>
public static class CliRun
{
    /// <summary>Runs `crisp ARGS` to its end; returns its peak RSS in KiB. Throws with its stderr when it fails.</summary>
    public static long PeakRssKiB(string tools, string crisp, string dir, params string[] args) =>
        Timed(tools, crisp, dir, args).KiB;

    /// <summary>Runs `crisp ARGS` to its end; returns its peak RSS in KiB and its wall time from fork to reap (the
    /// shipped NativeAOT binary, start-up included). Throws with its stderr when it fails.</summary>
    public static (long KiB, double Seconds) Timed(string tools, string crisp, string dir, params string[] args)
    {
        string peakRss = Path.Combine(tools, "peak_rss"), outFile = Path.Combine(dir, "crisp-stdout"), err = Path.Combine(dir, "crisp-stderr");
        const int flags = FileIo.O_WRONLY | FileIo.O_CREAT | FileIo.O_TRUNC;
        // crisp's own stdout goes to the same file before peak_rss's line: the number is the last line.
        int pid = Spawn.Start(peakRss, [peakRss, "-t", crisp, .. args], new SpawnOptions
        {
            Opens = [(0, "/dev/null", FileIo.O_RDONLY, 0), (1, outFile, flags, 0x180), (2, err, flags, 0x180)],
        });
        var status = Spawn.Reap(pid);
        var lines = File.ReadAllLines(outFile);
        var last = lines.Length == 0 ? [] : lines[^1].Split(' ');
        if (!status.Exited || status.ExitCode != 0 || last.Length != 2 || !long.TryParse(last[0], out long kib) || !long.TryParse(last[1], out long us))
            throw new InvalidOperationException($"crisp {string.Join(' ', args)} failed ({status}): {File.ReadAllText(err).Trim()}");
        return (kib, us / 1e6);
    }
}
