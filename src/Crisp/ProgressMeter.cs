namespace Crisp;

/// <summary>
/// How far a long dump or restore has got, for a front end to show: the stage and the page bytes done of an
/// expected total. The engine only counts (page writers and fillers add what they moved); whoever shows it reads
/// it from its own thread, so every member is safe to read while the engine runs.
/// </summary>
public sealed class ProgressMeter
{
    private long _done, _total;
    private volatile string _stage = "starting";

    public string Stage => _stage;
    public long DoneBytes => Interlocked.Read(ref _done);
    /// <summary>Expected bytes; never below what is done (an estimate may be short).</summary>
    public long TotalBytes => Math.Max(Interlocked.Read(ref _total), DoneBytes);

    /// <summary>Raised on the engine's thread when a stage begins, so a short stage is shown too.</summary>
    public event Action? StageBegun;

    public void Begin(string stage)
    {
        _stage = stage;
        StageBegun?.Invoke();
    }

    public void SetTotal(long bytes) => Interlocked.Exchange(ref _total, bytes);

    public void Add(long bytes) => Interlocked.Add(ref _done, bytes);
}
