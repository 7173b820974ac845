using System.Diagnostics;
using Crisp.Dump;
using Crisp.Images;

namespace Crisp.Resources.Memory;

/// <summary>The memory participant of a pre-dump (<see cref="DumpPipeline.PreDump"/>). Collect, while the task is
/// seized: its VMAs, write tracking armed (<see cref="WriteTracker"/>), the pages to store chosen (all, or with
/// --prev-images-dir those written since the parent and those it lacks), then every tracked page write-protected
/// (writes from here on go to the next dump). Finish, once the tree runs again: the pages read with
/// process_vm_readv into pagemap-PID.img and pages-N.img (or the page server) — a page written after the tracking
/// was armed is stored again by the next dump, so what each page held when it was copied does not matter.
/// Release (only a pre-dump that failed while the tree was held): the tracking this pre-dump armed goes again;
/// what a previous one armed stays for a retry.</summary>
public sealed class MemoryPreDump : IDumpStage
{
    public string Name => "memory";

    public void Dump(DumpContext ctx, DumpTask task)
    {
        var chain = ctx.Memory.Chain;
        chain.Load(ctx);
        // The scratch page first, so that the VMA list leaves it out.
        task.Remote.PutOnScratch(new byte[8]);
        var vmas = VmaCollector.Collect(task.Pid, task.OwnedRanges, _ => 0, _ => 0);
        chain.Previous.TryGetValue(task.Pid, out var previous);
        bool held = WriteTracker.StillHeld(task, previous);
        var armed = WriteTracker.Arm(task, vmas, held ? previous : null, ctx.Log);
        var plans = ctx.Memory.PreDump;
        if (!held)
            plans.Created.Add(armed);
        chain.Armed.Add(armed);
        var parent = chain.Parent is null ? null : ParentCoverage.Open(chain.Parent, task.VirtualPid);
        using var pagemap = Linux.Proc.Pagemap.Open(task.Pid);
        // Only what is tracked from now on: the rest is stored whole by the final dump anyway.
        var tracked = vmas.Where(v => v.HasPrivatePages && armed.Covers(v.Start, v.End));
        bool trusted = held && !chain.ResetUnfinished;
        var plan = PagePlan.Make(pagemap, tracked, v => WriteTracker.TrackedSince(v, previous, trusted), parent, previous?.SoftDirty == true);
        WriteTracker.Reset(pagemap, armed);
        plans.Planned.Add((task, plan));
    }

    public void Finish(DumpContext ctx)
    {
        long start = Stopwatch.GetTimestamp();
        foreach (var (task, plan) in ctx.Memory.PreDump.Planned)
        {
            using var writer = ctx.Images.CreatePagemap(task.VirtualPid, ctx.NewId());
            try
            {
                new PrivatePagesDump(task.Pid, writer, ctx.Memory.Batches).Dump(plan, taskRuns: true);
            }
            catch (Exception e) when (Gone(task.Pid, e))
            {
                // The tree runs on while its memory is copied: a task that exited meanwhile (a shell's short-lived
                // child) is in no later dump; its tracking went with it, so a task that reuses its pid is stored whole.
                ctx.Log.Info($"pre-dump: task {task.Pid} exited while its memory was copied; left out");
                continue;
            }
            ctx.Counters.AddPrivate(plan.Sum(r => (long)r.Length) / PagemapWriter.PageSize, writer);
            ctx.Log.Debug($"pre-dump of {task.Pid}: {writer.PagesWritten} pages stored, {writer.PagesInParent} in the parent");
        }
        ctx.Counters.MemDump = Stopwatch.GetElapsedTime(start);
    }

    public void Release(DumpContext ctx, bool killed)
    {
        foreach (var t in ctx.Memory.PreDump.Created.Where(t => !t.SoftDirty))
        {
            try { ctx.Tasks.First(x => x.Pid == t.Pid).Remote.Syscall(Linux.Sysno.close, t.Fd); }
            catch (Exception e) { ctx.Log.Error($"closing the tracking userfaultfd of {t.Pid}: {e.Message}"); }
        }
    }

    private static bool Gone(int pid, Exception e) =>
        (e is Linux.SyscallException { Errno: Linux.Errnos.ESRCH } || e.InnerException is Linux.SyscallException { Errno: Linux.Errnos.ESRCH })
        || !Alive(pid);

    private static bool Alive(int pid)
    {
        try { return Linux.Proc.ProcStat.Read(pid).State is not ('Z' or 'X'); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return false; }
    }
}

/// <summary>Pre-dump-wide: each task's planned runs, and the tracking this pre-dump armed where none was held.</summary>
public sealed class PreDumpPlans
{
    public List<(DumpTask Task, List<PlannedRun> Plan)> Planned { get; } = [];
    public List<TrackedTask> Created { get; } = [];
}
