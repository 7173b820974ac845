using System.Globalization;
using System.Runtime.InteropServices;

namespace Crisp.Cli;

/// <summary>
/// A live line on stderr while a dump or restore runs — stage, MiB done of total, MiB/s, ETA — redrawn in place
/// four times a second and as each stage begins. Only when stderr is a terminal (a pipe or file gets nothing), and never when the
/// restored tree shares crisp's terminal (--shell-job): its output is the tree's then. The line is drawn once at
/// the start and once at the end, so even a short run shows it, and erased when done.
/// </summary>
internal sealed partial class ProgressLine : IDisposable
{
    private const int StderrFd = 2;
    private readonly string _verb;
    private readonly ProgressMeter _meter;
    private readonly TextWriter _err;
    private readonly Timer _timer;
    private readonly System.Diagnostics.Stopwatch _clock = System.Diagnostics.Stopwatch.StartNew();
    private readonly object _gate = new();
    private bool _done;

    private ProgressLine(string verb, ProgressMeter meter, TextWriter err)
    {
        (_verb, _meter, _err) = (verb, meter, err);
        Draw();
        _meter.StageBegun += OnStageBegun;
        _timer = new Timer(_ => Draw(), null, 250, 250);
    }

    /// <summary>A line for <paramref name="meter"/> when stderr is a terminal and <paramref name="allowed"/>; else null.</summary>
    public static ProgressLine? Start(string verb, ProgressMeter meter, bool allowed) =>
        allowed && IsATty(StderrFd) == 1 ? new ProgressLine(verb, meter, Console.Error) : null;

    private void OnStageBegun() => Draw();

    public void Dispose()
    {
        _meter.StageBegun -= OnStageBegun;
        _timer.Dispose();
        lock (_gate)
        {
            if (_done)
                return;
            Draw(final: true);
            _done = true;
            _err.Write("\r\x1b[K");
            _err.Flush();
        }
    }

    private void Draw(bool final = false)
    {
        lock (_gate)
        {
            if (_done)
                return;
            _err.Write("\r" + Render(final ? "done" : _meter.Stage) + "\x1b[K");
            _err.Flush();
        }
    }

    private string Render(string stage)
    {
        double seconds = Math.Max(_clock.Elapsed.TotalSeconds, 0.001);
        double done = _meter.DoneBytes / 1048576.0, total = _meter.TotalBytes / 1048576.0;
        double rate = done / seconds;
        string eta = rate <= 0 ? "?" : Eta(TimeSpan.FromSeconds((total - done) / rate));
        return string.Create(CultureInfo.InvariantCulture, $"crisp {_verb}: {stage}  {done:F1}/{total:F1} MiB  {rate:F1} MiB/s  ETA {eta}");
    }

    private static string Eta(TimeSpan t) => t.TotalHours >= 1 ? $"{(int)t.TotalHours}h{t.Minutes:D2}m" : t.TotalMinutes >= 1 ? $"{t.Minutes}m{t.Seconds:D2}s" : $"{t.Seconds}s";

    [LibraryImport("libc", EntryPoint = "isatty")]
    private static partial int IsATty(int fd);
}
