using Crisp.Images;
using Crisp.Images.Proto;
using Crisp.Linux.Proc;

namespace Crisp.Restore;

/// <summary>Reads the tree-wide images (inventory, pstree, cores) and checks they fit together,
/// before anything is created.</summary>
public static class CheckpointLoader
{
    public static inventory_entry ReadInventory(ImageDirectory images)
    {
        if (!images.Exists(ImageFile.Inventory))
            throw new CrispException($"{images.Path}: not a checkpoint (inventory.img is missing)");
        using var reader = images.OpenReader(ImageFile.Inventory);
        return reader.Read<inventory_entry>() ?? throw new CrispException($"{images.PathOf(ImageFile.Inventory)}: empty");
    }

    /// <summary>Tasks in pstree order, parents before children, with their threads' cores.</summary>
    public static List<RestoreTask> ReadTree(ImageDirectory images)
    {
        var entries = images.ReadAll<pstree_entry>(ImageFile.Pstree);
        if (entries.Count == 0)
            throw new CrispException($"{images.PathOf(ImageFile.Pstree)}: missing or empty");
        var byPid = new Dictionary<int, RestoreTask>();
        var listed = new HashSet<int>();
        var tasks = new List<RestoreTask>();
        foreach (var e in entries)
        {
            RestoreTask? parent = null;
            if (tasks.Count > 0 && !byPid.TryGetValue((int)e.Ppid, out parent))
                throw new CrispException($"pstree.img: parent {e.Ppid} of task {e.Pid} is not listed before it");
            if (!listed.Add((int)e.Pid))
                throw new CrispException($"pstree.img: task {e.Pid} is listed twice");
            if (e.Threads.Count == 0 || e.Threads[0] != e.Pid && !e.Threads.Contains(e.Pid))
                throw new CrispException($"pstree.img: task {e.Pid} does not list itself among its threads");
            var leaderCore = ReadCore(images, (int)e.Pid, requireThreadInfo: false);
            if (leaderCore.Tc is { TaskState: Resources.Core.TaskStates.Dead })
            {
                // A zombie: only its status is left (CRIU writes no thread_info or ids for it).
                if (parent is null)
                    throw new CrispException($"pstree.img: the root task {e.Pid} is a zombie");
                if (e.Threads.Count != 1)
                    throw new CrispException($"pstree.img: zombie {e.Pid} lists {e.Threads.Count} threads");
                parent.Zombies.Add(new RestoreZombie(e, leaderCore, parent));
                continue;
            }
            int depth = e.NsPids.Count;
            if (e.NsTids.Count != e.Threads.Count * depth)
                throw new CrispException($"pstree.img: task {e.Pid} has {e.NsTids.Count} ns_tids for {e.Threads.Count} thread(s) at {depth} nested pid namespace level(s)");
            // Loops, not Skip/Take/OrderBy chains: a Select on LINQ's own iterators is a generic virtual call, resolved
            // through the native binary's type loader the first time (~1 ms of a small restore).
            var threads = new List<RestoreThread>(e.Threads.Count);
            for (int i = 0; i < e.Threads.Count; i++)
            {
                var nested = new int[depth];
                for (int k = 0; k < depth; k++)
                    nested[k] = (int)e.NsTids[i * depth + k];
                var thread = new RestoreThread((int)e.Threads[i], ReadCore(images, (int)e.Threads[i])) { NestedTids = nested };
                if (e.Threads[i] == e.Pid)
                    threads.Insert(0, thread);   // the leader first, the others in their order
                else
                    threads.Add(thread);
            }
            if (threads[0].Core.Tc is null)
                throw new CrispException($"{images.PathOf(ImageFile.Core(e.Pid))}: task core missing");
            // ids-PID.img (current CRIU, crisp) wins over core.ids (images of old CRIUs).
            if (images.Exists(ImageFile.Ids(e.Pid)))
                threads[0].Core.Ids = images.ReadOne<task_kobj_ids_entry>(ImageFile.Ids(e.Pid));
            if (threads[0].Core.Ids is null)
                throw new CrispException($"{images.PathOf(ImageFile.Ids(e.Pid))}: missing (and the task's core has no ids)");
            var task = new RestoreTask(e, threads, parent);
            parent?.Children.Add(task);
            byPid[task.Pid] = task;
            tasks.Add(task);
        }
        return tasks;
    }

    private static core_entry ReadCore(ImageDirectory images, int tid, bool requireThreadInfo = true)
    {
        var file = ImageFile.Core(tid);
        if (!images.Exists(file))
            throw new CrispException($"{images.PathOf(file)}: missing");
        using var reader = images.OpenReader(file);
        var core = reader.Read<core_entry>() ?? throw new CrispException($"{images.PathOf(file)}: empty");
        if (core.Mtype != core_entry.Types.march.X8664 || requireThreadInfo && core.ThreadInfo is null)
            throw new CrispException($"{images.PathOf(file)}: not an x86-64 task");
        if (requireThreadInfo && core.ThreadInfo.Gpregs is null)
            throw new CrispException($"{images.PathOf(file)}: thread_info without its registers (gpregs)");
        return core;
    }

    /// <summary>Every PID and TID must be free: restore gives each its old number.</summary>
    public static void CheckPidsFree(IEnumerable<RestoreTask> tasks)
    {
        foreach (var tid in tasks.SelectMany(t => t.Threads.Select(th => th.Tid).Concat(t.Zombies.Select(z => z.Pid))))
            if (Procfs.Host.Exists(tid))
                throw new CrispException($"PID {tid} is already in use") { Errno = Linux.Errnos.EEXIST };
    }
}
