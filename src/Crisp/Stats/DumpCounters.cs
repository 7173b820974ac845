namespace Crisp.Stats;

/// <summary>What CRIU's stats-dump records, gathered while the dump runs. The memory code adds what its
/// page writers stored (DumpContext.Counters), so the counts are those of pages-*.img.</summary>
public sealed class DumpCounters
{
    /// <summary>Pages of private mappings looked at (present or not).</summary>
    public long PagesScanned { get; set; }
    /// <summary>Private pages stored in pages-*.img.</summary>
    public long PagesWritten { get; set; }
    /// <summary>Private pages left in the parent images (a pre-dump chain: PE_PARENT runs).</summary>
    public long PagesSkippedParent { get; set; }
    /// <summary>Pages recorded PE_LAZY (dump --lazy-pages), CRIU's pages_lazy.</summary>
    public long PagesLazy { get; set; }
    /// <summary>Shared anonymous memory: pages of the objects looked at, and stored.</summary>
    public long ShPagesScanned { get; set; }
    public long ShPagesWritten { get; set; }

    public TimeSpan Freezing { get; set; }
    public TimeSpan Frozen { get; set; }
    /// <summary>The memory stage's time (CRIU's memdump_time), or what a pre-dump spent copying pages.</summary>
    public TimeSpan MemDump
    {
        get => StageTimes.GetValueOrDefault(MemoryStage);
        set => StageTimes[MemoryStage] = value;
    }
    /// <summary>Time each collect participant took, over every task, by name.</summary>
    public Dictionary<string, TimeSpan> StageTimes { get; } = [];
    private const string MemoryStage = "memory";
    /// <summary>Time spent writing page data to pages-*.img (inside MemDump).</summary>
    public TimeSpan MemWrite { get; set; }

    public void AddStageTime(string stage, TimeSpan time) => StageTimes[stage] = StageTimes.GetValueOrDefault(stage) + time;

    /// <summary>One task's private pages: <paramref name="scanned"/> pages looked at, and what the
    /// writer stored. Call after the writer's last AddPages.</summary>
    public void AddPrivate(long scanned, Images.PagemapWriter writer)
    {
        PagesScanned += scanned;
        PagesWritten += writer.PagesWritten;
        PagesSkippedParent += writer.PagesInParent;
        PagesLazy += writer.PagesLazy;
        MemWrite += writer.WriteTime;
    }

    /// <summary>One shared anonymous object: its size in pages, and what the writer stored.</summary>
    public void AddShared(long scanned, Images.PagemapWriter writer)
    {
        ShPagesScanned += scanned;
        ShPagesWritten += writer.PagesWritten;
        MemWrite += writer.WriteTime;
    }

}

/// <summary>What CRIU's stats-restore records.</summary>
public sealed class RestoreCounters
{
    /// <summary>Pages written into the tasks (CRIU: those compared equal with a parent's are not).</summary>
    public long PagesRestored { get; set; }
    /// <summary>Pages of inherited VMAs compared with the parent's, and those left shared copy-on-write.</summary>
    public long PagesCompared { get; set; }
    public long PagesSkippedCow { get; set; }
    /// <summary>Making the puppet tree (CRIU: forking).</summary>
    public TimeSpan Forking { get; set; }
    /// <summary>The whole restore, images read to tasks running.</summary>
    public TimeSpan Restore { get; set; }
}
