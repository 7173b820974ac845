using Crisp.Resources.Files;
using Crisp.Resources.Files.Memfd;

namespace Crisp.Resources.Memory;

/// <summary>Dump-wide memory state. Mapped files and memfd mappings are entries of the files' table, so both
/// come from the files' state.</summary>
public sealed class MemoryDumpState(FileTable files, MemfdInodesDump memfds, Log log)
{
    public MappedFiles MappedFiles { get; } = new(files);
    public MemfdInodesDump Memfds { get; } = memfds;
    public SharedAnonDump SharedAnon { get; } = new();
    public MemoryChain Chain { get; } = new();
    /// <summary>The page batches every task's copy reuses (bounded memory, no per-batch allocation).</summary>
    public PageBatchPool Batches { get; } = new(log);
    /// <summary>dump --lazy-pages: each task's lazy runs by virtual pid, with its host pid (what the lazy pages are
    /// served from).</summary>
    public Dictionary<int, (int HostPid, List<PlannedRun> Runs)> LazyRuns { get; } = [];
    /// <summary>A pre-dump's plans, from its collect to its finish (<see cref="MemoryPreDump"/>).</summary>
    public PreDumpPlans PreDump { get; } = new();
    /// <summary>The final dump's copies of the tasks' tracking userfaultfds, closed with the context, after the
    /// tree is let go (<see cref="WriteTracker.Stop"/>).</summary>
    public List<Linux.UnixFd> EndedTrackers { get; } = [];
    /// <summary>dump --leave-running: the pages copied while the tree ran, before this dump's stop (null: none).</summary>
    public RunningCopy? RunningCopy { get; set; }
}
