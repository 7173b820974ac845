using System.Runtime.InteropServices;
using Crisp.Dump;
using Crisp.Images;
using Crisp.Images.Proto;
using Crisp.Linux.Proc;
using Crisp.Linux;

namespace Crisp.Resources.Memory;

/// <summary>The address space of a task: mm-PID.img (mm fields, auxv, exe, every VMA) and its pages
/// (pagemap-PID.img + pages-N.img; shared anonymous objects once each in pagemap-shmem-SHMID.img).</summary>
public sealed class MemoryDump : IDumpStage
{
    public string Name => "memory";

    public void Dump(DumpContext ctx, DumpTask task)
    {
        int pid = task.Pid;
        // Remote calls first: they map crisp's scratch pages, which the VMA list must then leave out.
        ulong brk = (ulong)task.Call("brk(0)", Sysno.brk, 0);
        int dumpable = (int)task.Call("prctl(PR_GET_DUMPABLE)", Sysno.prctl, Prctl.PR_GET_DUMPABLE);
        bool thpDisabled = task.Call("prctl(PR_GET_THP_DISABLE)", Sysno.prctl, Prctl.PR_GET_THP_DISABLE) != 0;
        var chain = ctx.Memory.Chain;
        chain.Load(ctx);
        var copied = ctx.Memory.RunningCopy?.Of(task);
        // A chain's dump after a copy made while the tree ran: its plan is made beside the smaps read below.
        var inputs = copied is { InChain: true } ? ChainPlanInputs.Of(task, chain) : null;
        var ahead = inputs is not null && !ctx.Options.Lazy ? PlanAhead.Start(pid, inputs, copied!) : null;
        var files = ctx.Memory.MappedFiles;
        var memfds = ctx.Memory.Memfds;
        var vmas = VmaCollector.Collect(pid, task.OwnedRanges, path => files.IdOf(ctx, path),
            m => m.IsMemfd ? memfds.MappingFileIdOf(ctx, pid, m)
                : m.IsSocket ? Files.Sockets.Packet.PacketRingMappings.FileIdOf(ctx, pid, m)
                : ctx.Files.GhostReferences.MappingFileIdOf(ctx, pid, m));

        var stat = task.Stat;
        var mm = new mm_entry
        {
            MmStartCode = stat.StartCode,
            MmEndCode = stat.EndCode,
            MmStartData = stat.StartData,
            MmEndData = stat.EndData,
            MmStartStack = stat.StartStack,
            MmStartBrk = stat.StartBrk,
            MmBrk = brk,
            MmArgStart = stat.ArgStart,
            MmArgEnd = stat.ArgEnd,
            MmEnvStart = stat.EnvStart,
            MmEnvEnd = stat.EnvEnd,
            ExeFileId = files.IdOf(ctx, ExePath(pid)),
            Dumpable = dumpable,
            ThpDisabled = thpDisabled,
            CoredumpFilter = (uint)Linux.Proc.ProcFiles.Hex(Procfs.Host.ReadText(pid, "coredump_filter").Trim()),
        };
        mm.MmSavedAuxv.AddRange(SavedAuxv(pid));
        mm.Vmas.AddRange(vmas.Select(v => v.Entry));
        foreach (var vma in vmas)   // not Where(..).Select(..): a generic virtual call on LINQ's iterator (Procfs.ReadLines)
            if (vma.Is(VmaStatus.AioRing))
                mm.Aios.Add(Aio.AioRings.Dump(pid, vma));
        ctx.Images.Write(ImageFile.Mm(task.VirtualPid), mm);

        using (var writer = ctx.Images.CreatePagemap(task.VirtualPid, ctx.NewId()))
        {
            var pages = new PrivatePagesDump(pid, writer, ctx.Memory.Batches);
            if (copied is { InChain: false })
                DumpCopied(ctx, vmas, pages, copied);
            else if (ctx.Options.Lazy && chain.Parent is null && !chain.Previous.ContainsKey(pid))
                ctx.Memory.LazyRuns[task.VirtualPid] = (pid, pages.DumpLazy(vmas, v => Lazy.LazyVmas.CanBeLazy(v.Entry)));
            else if (chain.Parent is null && !ctx.Options.TrackMem && !chain.Previous.ContainsKey(pid))
                pages.Dump(vmas);
            else
                DumpIncremental(ctx, task, chain, vmas, pages, copied, inputs, ahead);
            ctx.Counters.AddPrivate(vmas.Where(v => v.HasPrivatePages).Sum(v => (long)((v.End - v.Start) / PagemapWriter.PageSize)), writer);
            ctx.Log.Debug($"memory of {pid}: {vmas.Count} VMAs, {pages.Pages} private pages");
        }
        var shared = ctx.Memory.SharedAnon;
        foreach (var vma in vmas.Where(v => v.Is(VmaStatus.Regular | VmaStatus.AnonShared) && !v.Is(VmaStatus.SysvIpc)))
            shared.DumpOnce(ctx, pid, vma);
    }

    /// <summary>A dump after a copy made while the task ran (<see cref="RunningCopy"/>): the pages not written since
    /// come from that copy, the rest are read now; then the tracking fd goes to be closed once the tree runs again
    /// (un-write-protecting a GiB costs the kernel tens of ms).</summary>
    private static void DumpCopied(DumpContext ctx, List<DumpedVma> vmas, PrivatePagesDump pages, CopiedTask copied)
    {
        using (var pagemap = Linux.Proc.Pagemap.Open(copied.Pid))
        {
            var plan = PagePlan.Make(pagemap, vmas.Where(v => v.HasPrivatePages), copied.TrackedSince, null, copy: copied.Coverage);
            pages.Dump(plan, taskRuns: false, copied);
            long held = plan.Where(r => r.Copied).Sum(r => (long)r.Length) / PagemapWriter.PageSize;
            ctx.Log.Debug($"memory of {copied.Pid}: {held} pages from the copy made while it ran, {pages.Pages - held} read now");
        }
        if (copied.TakeTracker() is { } tracker)
            ctx.Memory.EndedTrackers.Add(tracker);
    }

    /// <summary>A dump in a pre-dump chain: pages written since the parent (and those it lacks) are stored, the
    /// rest recorded as PE_PARENT runs; after a copy made while the tree ran (<see cref="RunningCopy.TakeInChain"/>),
    /// those written before its reset come from that copy. Then tracking is armed again for the next dump (--track-mem with
    /// --leave-running) or its userfaultfd closed in the task: this dump is the chain's last.</summary>
    private static void DumpIncremental(DumpContext ctx, DumpTask task, MemoryChain chain, List<DumpedVma> vmas, PrivatePagesDump pages, CopiedTask? copied,
        ChainPlanInputs? inputs, PlanAhead? ahead)
    {
        inputs ??= ChainPlanInputs.Of(task, chain);
        var (previous, held) = (inputs.Previous, inputs.Held);
        if (previous is not null && !held)
            ctx.Log.Info($"task {task.Pid}: the tracking of the previous dump is gone (fd {previous.Fd} closed, or another process): storing every page");
        using var pagemap = Linux.Proc.Pagemap.Open(task.Pid);
        List<PlannedRun>? plan;
        if (ctx.Options.Lazy)
        {
            // crisp migrate --lazy after pre-dumps: what the chain holds stays PE_PARENT (the target has it), what was
            // written since in private anonymous memory is lazy, served from the seized tree. VMA by VMA: a plan
            // merges runs across VMAs, and only some VMAs can be lazy.
            plan = [];
            foreach (var vma in vmas.Where(v => v.HasPrivatePages))
            {
                bool lazy = Lazy.LazyVmas.CanBeLazy(vma.Entry);
                plan.AddRange(inputs.Plan(pagemap, [vma], null).Select(r => lazy && !r.InParent ? r with { Lazy = true } : r));
            }
            ctx.Memory.LazyRuns[task.VirtualPid] = (task.Pid, plan.Where(r => r.Lazy).ToList());
        }
        else
        {
            string? why = null;
            plan = ahead?.Take(vmas, out why);
            if (ahead is not null && plan is null)
                ctx.Log.Debug($"memory of {task.Pid}: the plan made beside smaps is not used ({why}): made again");
            plan ??= inputs.Plan(pagemap, vmas, copied);
        }
        pages.Dump(plan, taskRuns: false, copied);
        if (copied is not null)
            ctx.Log.Debug($"memory of {task.Pid}: {plan.Where(r => r.Copied).Sum(r => (long)r.Length) / PagemapWriter.PageSize} pages from the copy made while it ran, {plan.Where(r => !r.Copied && !r.InParent).Sum(r => (long)r.Length) / PagemapWriter.PageSize} read now");
        if (ctx.Options.TrackMem && ctx.Options.LeaveRunning)
        {
            var armed = WriteTracker.Arm(task, vmas, held ? previous : null, ctx.Log);
            WriteTracker.Reset(pagemap, armed);
            chain.Armed.Add(armed);
            chain.NoteTracker(armed);
        }
        else if (held)
            WriteTracker.Stop(task, previous!, ctx.Memory.EndedTrackers);
    }

    private static string ExePath(int pid)
    {
        string? target = new FileInfo(Procfs.Host.Path(pid, "exe")).LinkTarget;
        return target ?? throw new CrispException($"task {pid}: {Procfs.Host.Path(pid, "exe")} is not readable");
    }

    /// <summary>/proc/PID/auxv without its AT_NULL terminator pair: the kernel puts one back (PR_SET_MM_MAP
    /// zero-fills and terminates), and CRIU refuses more than AT_VECTOR_SIZE (44) words, which the terminator of
    /// a 23-entry vector (this kernel's) would exceed.</summary>
    private static ulong[] SavedAuxv(int pid)
    {
        var words = MemoryMarshal.Cast<byte, ulong>(File.ReadAllBytes(Procfs.Host.Path(pid, "auxv"))).ToArray();
        int n = words.Length & ~1;
        while (n >= 2 && words[n - 2] == 0 && words[n - 1] == 0)
            n -= 2;
        return words[..n];
    }
}
