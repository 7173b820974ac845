using Crisp.Images.Proto;
using Crisp.Linux;
using Crisp.Restore;

namespace Crisp.Resources.Memory;

/// <summary>Which private anonymous VMAs a restored child gets from its parent by fork, copy-on-write, as CRIU does
/// (criu/mem.c: prepare_cow_vmas, vma_inherited). A parent VMA that one of its children has at the same address
/// with the same protection and flags is mapped and filled in the parent's puppet before its children are cloned
/// (<see cref="MemoryRestore.PremapForChildren"/>); each such child keeps it, and only its pages that differ from
/// the parent's are written (<see cref="CowFiller"/>), so the pages the two shared at dump are shared again. Whether
/// a page was shared is decided at restore by comparing contents, as CRIU does: the images are CRIU's, every task's
/// pages stored in full (PE_PARENT means "in the previous pre-dump", not "in the parent task").</summary>
public sealed class CowPlan
{
    private readonly Dictionary<int, List<vma_entry>> _premapped = [];
    private readonly Dictionary<int, List<vma_entry>> _inherited = [];

    /// <summary>No sharing (a lazy restore: its areas belong to the lazy-pages daemon).</summary>
    public static CowPlan None { get; } = new();

    public static CowPlan Of(IEnumerable<RestoreTask> tasks, IReadOnlyDictionary<int, mm_entry> mms)
    {
        var plan = new CowPlan();
        var premapped = new HashSet<(int, ulong)>();
        foreach (var child in tasks)
        {
            if (child.Parent is not { } parent)
                continue;
            var parentVmas = mms[parent.Pid].Vmas.Where(Candidate).ToDictionary(v => v.Start);
            foreach (var v in mms[child.Pid].Vmas.Where(Candidate))
            {
                if (!parentVmas.TryGetValue(v.Start, out var p) || !Same(v, p))
                    continue;
                Add(plan._inherited, child.Pid, v);
                if (premapped.Add((parent.Pid, p.Start)))
                    Add(plan._premapped, parent.Pid, p);
            }
        }
        return plan;
    }

    /// <summary>The task's own VMAs that some child inherits: mapped and filled before its children are cloned.</summary>
    public IReadOnlyList<vma_entry> Premapped(int pid) => _premapped.TryGetValue(pid, out var l) ? l : [];

    /// <summary>The task's own VMAs it gets from its parent's puppet at clone (kept, compared page by page).</summary>
    public IReadOnlyList<vma_entry> Inherited(int pid) => _inherited.TryGetValue(pid, out var l) ? l : [];

    public bool Any => _premapped.Count > 0;

    /// <summary>Private anonymous, readable and writable (filled and compared through process_vm_*), not hugetlb.</summary>
    private static bool Candidate(vma_entry v) =>
        VmaStatus.Is(v.Status, VmaStatus.Regular | VmaStatus.AnonPrivate) &&
        !VmaStatus.Is(v.Status, VmaStatus.Vdso) && !VmaStatus.Is(v.Status, VmaStatus.Vvar) && !VmaStatus.Is(v.Status, VmaStatus.SysvIpc) &&
        (v.Prot & (Mman.PROT_READ | Mman.PROT_WRITE)) == (Mman.PROT_READ | Mman.PROT_WRITE) &&
        (v.Flags & Mman.MAP_HUGETLB) == 0;

    private static bool Same(vma_entry a, vma_entry b) =>
        a.End == b.End && a.Prot == b.Prot && a.Flags == b.Flags && a.Status == b.Status;

    private static void Add(Dictionary<int, List<vma_entry>> map, int pid, vma_entry v)
    {
        if (!map.TryGetValue(pid, out var list))
            map[pid] = list = [];
        list.Add(v);
    }
}
