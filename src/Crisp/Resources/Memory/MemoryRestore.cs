using Crisp.Compel;
using System.Diagnostics;
using Crisp.Images;
using Crisp.Images.Pages;
using Crisp.Images.Proto;
using Crisp.Linux.Proc;
using Crisp.Linux;
using Crisp.Restore;

namespace Crisp.Resources.Memory;

/// <summary>The address space of each task, first of all restore stages: puppet leftovers cleared,
/// vdso/vvar moved, every VMA mapped, pages filled, madvise, PR_SET_MM_MAP (exe, auxv, bounds), dumpable.
/// Shared anonymous objects are created once for the whole tree in <see cref="Prepare"/>.</summary>
public sealed class MemoryRestore : IRestoreStage
{
    public string Name => "memory";

    /// <summary>restore --lazy-pages: private anonymous memory (<see cref="Lazy.LazyVmas"/>) is mapped empty, registered
    /// with a userfaultfd and handed to the lazy-pages daemon (<see cref="State.Lazy"/>) instead of filled.</summary>
    public bool Lazy { get; init; }

    /// <summary>Restore-wide state: every task's mm entry, the mapped files, the shared objects.</summary>
    public sealed class State(Log log) : IDisposable
    {
        public Dictionary<int, mm_entry> Mms { get; } = [];
        public Dictionary<uint, string> Files { get; set; } = [];
        public SharedAnonObjects Shared { get; } = new();
        public long BytesFilled { get; set; }
        /// <summary>The page batches every task's fill reuses.</summary>
        public PageBatchPool Batches { get; } = new(log, populate: true);
        public TimeSpan FillTime { get; set; }
        /// <summary>restore --lazy-pages: the connection to the lazy-pages daemon.</summary>
        public Lazy.LazyPagesClient? Lazy { get; set; }
        /// <summary>Which private anonymous VMAs children share with their parent copy-on-write.</summary>
        public CowPlan Cow { get; set; } = CowPlan.None;
        /// <summary>Tasks whose shared VMAs were mapped and filled before their children were cloned, with the
        /// pages they hold there (their stored runs): what a child inherits.</summary>
        public Dictionary<int, PagemapReader.Run[]> Premapped { get; } = [];
        /// <summary>Pages compared with the parent's, left shared with it, written because they differ, dropped.</summary>
        public long CowCompared { get; set; }
        public long CowShared { get; set; }
        public long CowWritten { get; set; }
        public long CowDropped { get; set; }

        /// <summary>The two buffers every task's copy-on-write comparison reuses (<see cref="CowFiller"/>): two fresh
        /// 1 MiB arrays per task were most of a forked child's restore (their first touch, and the collections they
        /// started: 7 in a 10-task restore).</summary>
        public (MappedPages Image, MappedPages Current) CowBuffers => _cowBuffers ??= (new(CowFiller.Chunk), new(CowFiller.Chunk));
        private (MappedPages Image, MappedPages Current)? _cowBuffers;

        public void Dispose()
        {
            Shared.Dispose();
            Lazy?.Dispose();
            _cowBuffers?.Image.Dispose();
            _cowBuffers?.Current.Dispose();
        }
    }

    /// <summary>The VMAs whose pages the daemon fills: lazy ones holding pages. A PE_LAZY run outside them cannot be filled.</summary>
    private static HashSet<vma_entry> LazyAreas(RestoreTask task, mm_entry mm, PagemapReader pages)
    {
        var lazy = mm.Vmas.Where(v => Memory.Lazy.LazyVmas.CanBeLazy(v) && pages.Runs.Any(r => r.Vaddr < v.End && r.End > v.Start)).ToHashSet();
        foreach (var r in pages.Runs.Where(r => !r.IsPresent && (r.Flags & PagemapFlags.Lazy) != 0))
            if (!lazy.Any(v => v.Start <= r.Vaddr && r.End <= v.End))
                throw new CrispException($"task {task.Pid}: lazy pages 0x{r.Vaddr:x}-0x{r.End:x} lie outside its private anonymous memory: they cannot be restored lazily");
        return lazy;
    }

    /// <summary>A plain restore of a dump --lazy-pages: its lazy pages are not in the images.</summary>
    private static void RefuseLazyRuns(RestoreContext ctx, RestoreTask task, PagemapReader pages)
    {
        if (pages.Runs.FirstOrDefault(r => !r.IsPresent && (r.Flags & PagemapFlags.Lazy) != 0) is { NrPages: > 0 } run)
            throw new CrispException($"{ctx.Images.PathOf(ImageFile.Pagemap(task.Pid))}: pages 0x{run.Vaddr:x}-0x{run.End:x} are lazy (a dump --lazy-pages) and not stored here: " +
                "restore with --lazy-pages and a `crisp lazy-pages --page-server` daemon");
    }

    public void Prepare(RestoreContext ctx)
    {
        var state = ctx.Memory;
        foreach (var task in ctx.Tasks)
        {
            var file = ImageFile.Mm(task.Pid);
            if (!ctx.Images.Exists(file))
                throw new CrispException($"{ctx.Images.PathOf(file)}: missing");
            state.Mms[task.Pid] = ctx.Images.ReadAll<mm_entry>(file).FirstOrDefault()
                ?? throw new CrispException($"{ctx.Images.PathOf(file)}: empty");
        }
        state.Files = MappedFiles.Read(ctx);
        state.Shared.Create(ctx.Images, state.Mms.Values);
        // Lazy memory is the daemon's: nothing is filled before the children exist.
        state.Cow = Lazy ? CowPlan.None : CowPlan.Of(ctx.Tasks, state.Mms);
    }

    /// <summary>The puppets phase, in a task about to clone its children: the VMAs they share with it are mapped and
    /// filled now (its own inherited ones compared first), so each child gets them by fork, copy-on-write. The task
    /// joins its cgroups first (CRIU's order), so these pages are charged there.</summary>
    public static void PremapForChildren(RestoreContext ctx, RestoreTask task)
    {
        var state = ctx.Memory;
        var own = state.Cow.Premapped(task.Pid);
        if (own.Count == 0)
            return;
        Cgroups.CgroupsRestore.Join(ctx, task);
        var mm = state.Mms[task.Pid];
        var space = new PuppetAddressSpace(task, mm, state.Files, state.Shared, Files.Memfd.MemfdInodes.Of(ctx), ctx.Ipc.Attachments);
        space.CheckFits();
        space.AnonymizePuppetText();
        var inherited = state.Cow.Inherited(task.Pid).ToHashSet();
        space.ClearLeftovers(inherited);
        space.MoveVdso();
        var fresh = own.Where(v => !inherited.Contains(v)).ToHashSet();
        using var source = new LocalPageSource(ctx.Images);
        var pages = source.Pagemap(task.Pid);   // every page it names readable (a parent chain's too)
        RefuseLazyRuns(ctx, task, pages);
        space.MapAll(pages, skip: mm.Vmas.Where(v => !fresh.Contains(v)).ToHashSet());
        var clock = Stopwatch.StartNew();
        var filler = new PageFiller(task.Puppet.Pid, task.Pid, pages, source, space.WritableForFill, state.Batches);
        filler.Fill(fresh);
        state.BytesFilled += filler.BytesWritten;
        FillInherited(ctx, task, pages, inherited);
        state.FillTime += clock.Elapsed;
        state.Premapped[task.Pid] = [.. pages.Runs.Where(r => r.IsPresent)];
        ctx.Log.Debug($"memory of {task.Pid}: {own.Count} VMA(s) filled before its children are cloned");
    }

    /// <summary>The VMAs the task got from its parent's puppet: only pages that differ are written.</summary>
    private static void FillInherited(RestoreContext ctx, RestoreTask task, PagemapReader pages, IReadOnlyCollection<vma_entry> inherited)
    {
        if (inherited.Count == 0)
            return;
        var state = ctx.Memory;
        var cow = new CowFiller(task, pages, state.CowBuffers);
        cow.Fill(inherited, state.Premapped[task.Parent!.Pid]);
        state.BytesFilled += cow.Written * PagemapWriter.PageSize;
        state.CowCompared += cow.Compared;
        state.CowShared += cow.Shared;
        state.CowWritten += cow.Written;
        state.CowDropped += cow.Dropped;
        ctx.Log.Info($"memory of {task.Pid}: {cow.Shared} of {cow.Compared} page(s) shared with parent {task.Parent.Pid} copy-on-write, " +
            $"{cow.Written} written, {cow.Dropped} dropped");
    }

    public void Restore(RestoreContext ctx, RestoreTask task)
    {
        var state = ctx.Memory;
        var mm = state.Mms[task.Pid];
        var memfds = Files.Memfd.MemfdInodes.Of(ctx);
        var space = new PuppetAddressSpace(task, mm, state.Files, state.Shared, memfds, ctx.Ipc.Attachments);
        // VMAs in place already: inherited from the parent's puppet, and (when this task premapped) its own shared ones.
        bool premapped = state.Premapped.ContainsKey(task.Pid);
        var inherited = state.Cow.Inherited(task.Pid).ToHashSet();
        var inPlace = premapped ? inherited.Concat(state.Cow.Premapped(task.Pid)).ToHashSet() : inherited;
        space.CheckFits();
        space.AnonymizePuppetText();
        space.ClearLeftovers(inPlace);
        space.MoveVdso();
        using (var source = new LocalPageSource(ctx.Images))
        {
            var pages = source.Pagemap(task.Pid);   // every page it names readable (a parent chain's too)
            HashSet<vma_entry> lazy = Lazy ? LazyAreas(task, mm, pages) : [];
            if (!Lazy)
                RefuseLazyRuns(ctx, task, pages);
            space.MapAll(pages, skip: inPlace);
            int uffd = lazy.Count > 0 ? Memory.Lazy.LazyRegistration.Register(task, lazy) : -1;
            var clock = Stopwatch.StartNew();
            var filler = new PageFiller(task.Puppet.Pid, task.Pid, pages, source, space.WritableForFill, ctx.Memory.Batches);
            filler.Fill(mm.Vmas.Where(v => !lazy.Contains(v) && !inPlace.Contains(v)));
            state.BytesFilled += filler.BytesWritten;
            if (!premapped)
                FillInherited(ctx, task, pages, inherited);
            pages.VerifyRest();   // this task's pages against the manifest, as they streamed
            state.FillTime += clock.Elapsed;
            if (uffd >= 0)
                Memory.Lazy.LazyRegistration.HandOver(task, uffd, state.Lazy ?? throw new InvalidOperationException("lazy restore without a daemon"));
        }
        space.ProtectAfterFill();

        space.Advise(ctx.Log);
        Aio.AioRings.Restore(task, mm, ctx.Log);
        MmMapInstaller.Install(task, mm, state.Files);
        // brk and the mm's flags in one stop.
        var calls = new List<(string Name, RemoteCall Call)> { ("brk", new RemoteCall(Sysno.brk, (long)mm.MmBrk)) };
        // SUID_DUMP_ROOT (2) cannot be set by prctl; it only comes from exec of a setuid program.
        if (mm.HasDumpable && mm.Dumpable is 0 or 1)
            calls.Add(("prctl(PR_SET_DUMPABLE)", new RemoteCall(Sysno.prctl, Prctl.PR_SET_DUMPABLE, mm.Dumpable)));
        // MMF_DISABLE_THP belongs to the mm (CRIU's thp_disabled): set for the process, not per VMA.
        if (mm.HasThpDisabled && mm.ThpDisabled)
            calls.Add(("prctl(PR_SET_THP_DISABLE)", new RemoteCall(Sysno.prctl, Prctl.PR_SET_THP_DISABLE, 1)));
        long brk = task.Puppet.Remote.CallAll(calls)[0];
        if ((ulong)brk != mm.MmBrk)
            throw new CrispException($"task {task.Pid}: brk is 0x{brk:x} after restore, not 0x{mm.MmBrk:x}");
        // Also the mm's: which mappings a core dump includes. Written from crisp, as a shell would.
        if (mm.HasCoredumpFilter)
            File.WriteAllText(Procfs.Host.Path(task.HostPid, "coredump_filter"), $"0x{mm.CoredumpFilter:x}");
        if (task == ctx.Tasks[^1])
        {
            memfds.ApplySeals();   // every task's mappings exist now
            Ipc.IpcRestore.AfterAllAttached(ctx);
        }
        ctx.Log.Debug($"memory of {task.Pid}: {mm.Vmas.Count} VMAs");
    }
}
