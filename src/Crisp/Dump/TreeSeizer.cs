using System.Diagnostics;
using Crisp.Compel;
using Crisp.Linux;
using Crisp.Linux.Proc;

namespace Crisp.Dump;

/// <summary>Seizes the process tree rooted at the dump's root: a parent is stopped before its children
/// are listed, so its set of children cannot grow while we walk it.</summary>
public static class TreeSeizer
{
    public static void SeizeTree(DumpContext ctx)
    {
        int rootPid = ctx.Options.RootPid;
        if (rootPid <= 0 || !Directory.Exists($"/proc/{rootPid}"))
            throw new CrispException($"process {rootPid} not found");
        if (IsSelfOrAncestor(rootPid))
            throw new CrispException($"process {rootPid} is crisp itself or one of its ancestors");

        var seizer = new Seizer(ctx.Tracer);
        var clock = Stopwatch.StartNew();
        var queue = new Queue<DumpTask>();
        queue.Enqueue(Seize(ctx, seizer, rootPid, null));
        while (queue.Count > 0)
        {
            var task = queue.Dequeue();
            foreach (int child in ProcTasks.AllChildren(task.Pid).Distinct().Order())
            {
                if (clock.Elapsed > ctx.Options.Timeout)
                    throw new CrispException($"seizing the tree took longer than {ctx.Options.Timeout.TotalSeconds:F0} s (--timeout)");
                queue.Enqueue(Seize(ctx, seizer, child, task));
            }
        }
        ctx.Log.Info($"seized {ctx.Tasks.Count} task(s), {ctx.Tasks.Sum(t => t.Threads.Count)} thread(s) in {clock.Elapsed.TotalMilliseconds:F1} ms");
    }

    private static DumpTask Seize(DumpContext ctx, Seizer seizer, int pid, DumpTask? parent)
    {
        if (ProcStat.Read(pid).State is 'Z' or 'X')
            throw new CrispException($"task {pid} is a zombie; dumping zombies is not supported yet");
        var process = seizer.SeizeProcess(pid);
        DumpTask task;
        try
        {
            task = new DumpTask(ctx.Tracer, process, parent);
        }
        catch
        {
            process.Detach();
            throw;
        }
        ctx.Tasks.Add(task);
        parent?.Children.Add(task);
        ctx.Log.Debug($"seized {pid} ({task.Stat.Comm}) with {process.Threads.Count} thread(s), seccomp {string.Join(",", process.Threads.Select(t => t.SeccompMode))}");
        return task;
    }

    private static bool IsSelfOrAncestor(int pid)
    {
        for (int p = ProcessIds.Pid; p > 1; p = ProcStat.Read(p).PPid)
            if (p == pid)
                return true;
        return pid == 1;
    }
}
