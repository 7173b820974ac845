using Crisp.Dump;
using Crisp.Linux;
using Crisp.Linux.Proc;
using Crisp.Restore;

namespace Crisp.Resources.Namespaces;

/// <summary>Pid namespaces nested below the tree's: a task of the tree unshared CLONE_NEWPID (or was cloned with
/// it) and its children live one level deeper. CRIU has no fields for them; crisp keeps each task's pids below
/// the tree's level in pstree.img (crisp's ns_pids/ns_tids), the namespace it is in in ids.pid_ns_id, and the one
/// its next children go to, when not its own, in ids.pid_for_children_ns_id (crisp's). What crisp carries is the
/// shape unshare + fork makes: each nested namespace's init is in the tree and is a child of a task one level up
/// that made it (unshare); every other task of it descends from that task. The restore re-makes it the same way:
/// the parent puppet unshares CLONE_NEWPID before it clones the init (set_tid: one pid per level), clones the
/// namespace's other children of its own after, and a task that unshared without a child yet unshares last.
/// A namespace joined by setns, a task that went back to its own for children, a multithreaded task that
/// made one (threads cannot be made once pid_for_children differs) and zombies of such a task are refused.</summary>
public static class NestedPidNamespaces
{
    /// <summary>Dump, in the root's turn (every task seized): refuses the shapes crisp cannot re-make, naming the task.</summary>
    public static void Check(DumpContext ctx)
    {
        var own = ctx.Tasks.ToDictionary(t => t, t => NamespaceKind.Pid.InodeOf(t.Pid));
        foreach (var task in ctx.Tasks)
        {
            foreach (var zombie in task.Zombies.Where(z => z.NestedPids.Length != task.NestedPids.Length))
                throw new CrispException($"zombie {zombie.Pid} of task {task.Pid} is in another pid namespace than its parent: nested pid namespaces of zombies are not supported yet");
            var made = task.Children.Where(c => own[c] != own[task]).ToList();
            ulong? forChildren = NamespaceKind.Pid.InodeOf(task.Pid, "pid_for_children");
            bool unshared = forChildren != own[task];
            if (made.Count == 0 && !unshared)
                continue;
            string who = $"task {task.Pid} (pid {task.VirtualPid} in the tree)";
            if (task.Threads.Count > 1)
                throw new CrispException($"{who} has {task.Threads.Count} threads and unshared its pid namespace: nested pid namespaces of multithreaded tasks are not supported yet");
            if (task.Zombies.Count > 0 && made.Count > 0)
                throw new CrispException($"{who} made a nested pid namespace and has zombie children: not supported yet");
            foreach (var child in made)
            {
                if (child.Status.NSpid.Length != task.Status.NSpid.Length + 1)
                    throw new CrispException($"task {child.Pid} is in a pid namespace its parent {task.Pid} joined by setns: nested pid namespaces are supported only as unshare makes them");
                var init = ctx.Tasks.FirstOrDefault(t => own[t] == own[child] && t.Status.NSpid[^1] == 1);
                if (init is null || init.Parent != task)
                    throw new CrispException($"task {child.Pid} is in a pid namespace whose init is {(init is null ? "not in the tree" : $"task {init.Pid}, not a child of its parent {task.Pid}")}: nested pid namespaces are supported only as unshare makes them");
            }
            if (forChildren is { } next && next != own[task] && !made.Any(c => own[c] == next))
                throw new CrispException($"{who} has a pid_for_children namespace it did not make (setns): nested pid namespaces are supported only as unshare makes them");
            if (!unshared && made.Count > 0)
                throw new CrispException($"{who} made a nested pid namespace and went back to its own for children (setns): not supported yet");
        }
        if (ctx.Tasks.Any(t => t.NestedPids.Length > 0))
            ctx.Log.Info($"nested pid namespaces: {ctx.Tasks.Count(t => t.NestedPids.Length > 0)} task(s) below the tree's");
    }

    /// <summary>Dump, each task: the id of the pid namespace its next children go to, when not its own. One it
    /// unshared without making a child yet has no init, so /proc cannot show it: it gets a fresh id.</summary>
    public static void NumberForChildren(NamespaceIds numbering, DumpTask task)
    {
        var ids = task.Leader.Core.Ids;
        ulong? ownInode = NamespaceKind.Pid.InodeOf(task.Pid);
        ulong? next = NamespaceKind.Pid.InodeOf(task.Pid, "pid_for_children");
        if (ownInode is null || next == ownInode)
            return;
        ids.PidForChildrenNsId = next is { } inode ? numbering.IdOf(NamespaceKind.Pid, inode) : numbering.Fresh();
    }

    /// <summary>Restore, before anything is made: the images' nesting must be one unshare + fork can re-make.
    /// Throws one line naming the image and task otherwise.</summary>
    public static void Check(IReadOnlyList<RestoreTask> tasks)
    {
        var root = tasks[0];
        if (root.Depth != 0)
            throw new CrispException($"pstree.img: the root task {root.Pid} has pids below the tree's pid namespace (ns_pids)");
        var depthOf = new Dictionary<uint, (int Depth, RestoreTask Task)>();
        foreach (var task in tasks)
        {
            if (!task.Leader.NestedTids.SequenceEqual(task.Entry.NsPids.Select(p => (int)p)))
                throw new CrispException($"pstree.img: task {task.Pid}'s ns_tids do not start with its ns_pids");
            uint ns = task.Ids.PidNsId;
            if (depthOf.TryGetValue(ns, out var seen) && seen.Depth != task.Depth)
                throw new CrispException($"pstree.img: tasks {seen.Task.Pid} and {task.Pid} are in the same pid namespace {ns} (ids) at {seen.Depth} and {task.Depth} levels below the tree's (ns_pids)");
            depthOf[ns] = (task.Depth, task);
            if (task.Depth == 0 && ns != root.Ids.PidNsId)
                throw new CrispException($"ids-{task.Pid}.img: task {task.Pid} is in another pid namespace than the root task {root.Pid}, but pstree.img gives it no pids below the tree's (ns_pids)");
            foreach (var zombie in task.Zombies.Where(z => z.Entry.NsPids.Count != task.Depth))
                throw new CrispException($"pstree.img: zombie {zombie.Pid} is at {zombie.Entry.NsPids.Count} nested pid namespace level(s), its parent {task.Pid} at {task.Depth}");
        }
        foreach (var group in tasks.Where(t => t.Depth > 0).GroupBy(t => t.Ids.PidNsId))
        {
            var inits = group.Where(t => t.OwnPid == 1).ToList();
            if (inits.Count != 1)
                throw new CrispException($"pstree.img: nested pid namespace {group.Key} has {inits.Count} tasks with pid 1 ({string.Join(", ", inits.Select(t => t.Pid))}), not one");
            var init = inits[0];
            if (init.Parent!.Depth != init.Depth - 1 || init.Parent.Ids.PidNsId == group.Key)
                throw new CrispException($"pstree.img: task {init.Pid}, pid 1 of nested pid namespace {group.Key}, is not one level below its parent {init.Parent.Pid}");
            foreach (var task in group.Where(t => t.Parent!.Ids.PidNsId != group.Key && t.Parent != init.Parent))
                throw new CrispException($"pstree.img: task {task.Pid} is in nested pid namespace {group.Key}, but neither its parent {task.Parent!.Pid} nor that of the namespace's init {init.Pid} is");
        }
        foreach (var task in tasks)
        {
            var made = task.Children.Where(c => c.Ids.PidNsId != task.Ids.PidNsId).Select(c => c.Ids.PidNsId).Distinct().ToList();
            uint? next = task.Ids.HasPidForChildrenNsId ? task.Ids.PidForChildrenNsId : null;
            if (made.Count == 0 && next is null)
                continue;
            if (task.Threads.Count > 1)
                throw new CrispException($"pstree.img: task {task.Pid} has {task.Threads.Count} threads and unshared its pid namespace (threads cannot be made there)");
            if (made.Count > 0 && task.Zombies.Count > 0)
                throw new CrispException($"pstree.img: task {task.Pid} made a nested pid namespace and has zombie children");
            if (made.Count > 0 && next is null)
                throw new CrispException($"ids-{task.Pid}.img: task {task.Pid} has children in a nested pid namespace but no pid_for_children_ns_id");
            if (next is { } n && depthOf.ContainsKey(n) && !made.Contains(n))
                throw new CrispException($"ids-{task.Pid}.img: task {task.Pid}'s pid_for_children_ns_id {n} is a namespace of the tree it did not make");
        }
    }

    /// <summary>Whether any task is below the tree's pid namespace or unshared it for children.</summary>
    public static bool Any(IReadOnlyList<RestoreTask> tasks) => tasks.Any(t => t.Depth > 0 || t.Ids.HasPidForChildrenNsId);

    /// <summary>The order puppets are cloned in: parents first; a task's children in its own pid namespace
    /// before those in namespaces it made, each namespace's init before its other tasks, and the namespace its
    /// pid_for_children names last (it stays so). Without nesting, the images' order.</summary>
    public static IReadOnlyList<RestoreTask> CreationOrder(IReadOnlyList<RestoreTask> tasks)
    {
        if (!Any(tasks))
            return tasks;
        var order = new List<RestoreTask>(tasks.Count);
        void Visit(RestoreTask task)
        {
            order.Add(task);
            uint? next = task.Ids.HasPidForChildrenNsId ? task.Ids.PidForChildrenNsId : null;
            var made = task.Children.Select(c => c.Ids.PidNsId).Where(ns => ns != task.Ids.PidNsId).Distinct()
                .OrderBy(ns => ns == next ? 1 : 0).ToList();
            foreach (var child in task.Children.OrderBy(c => c.Ids.PidNsId == task.Ids.PidNsId ? -1 : made.IndexOf(c.Ids.PidNsId))
                .ThenBy(c => c.OwnPid == 1 ? 0 : 1))
                Visit(child);
        }
        Visit(tasks[0]);
        return order;
    }

    /// <summary>Clones <paramref name="task"/>'s puppet in its parent: the parent first unshares CLONE_NEWPID when
    /// the task is the init of a namespace it made; set_tid then holds one pid per level, the tree's to its own.</summary>
    public static Compel.Puppets.Puppet Clone(RestoreContext ctx, RestoreTask task)
    {
        var parent = task.Parent!;
        if (task.Depth == 0)
            return parent.Puppet.Clone(task.Pid);
        if (task.Ids.PidNsId != parent.Ids.PidNsId && task.OwnPid == 1)
        {
            parent.Call("unshare(CLONE_NEWPID)", Sysno.unshare, (long)Clone3.CLONE_NEWPID);
            ctx.Log.Debug($"puppet {parent.Pid} unshared its pid namespace for {task} (pid 1 of nested namespace {task.Ids.PidNsId})");
        }
        return parent.Puppet.Clone(task.Pids, task.Pids[parent.Depth]);
    }

    /// <summary>A zombie's puppet: in its parent's pid namespace (checked), one pid per level.</summary>
    public static Compel.Puppets.Puppet Clone(RestoreZombie zombie)
        => zombie.Parent.Depth == 0 ? zombie.Parent.Puppet.Clone(zombie.Pid) : zombie.Parent.Puppet.Clone(zombie.Pids, zombie.Pids[^1]);

    /// <summary>After every puppet and zombie exists: a task whose pid_for_children names a namespace no task is in
    /// (it unshared and made no child yet) unshares now, so its next child is pid 1 of a new one.</summary>
    public static void UnshareForChildrenToCome(RestoreContext ctx)
    {
        var inUse = ctx.Tasks.Select(t => t.Ids.PidNsId).ToHashSet();
        foreach (var task in ctx.Tasks.Where(t => t.Ids.HasPidForChildrenNsId && !inUse.Contains(t.Ids.PidForChildrenNsId)))
        {
            task.Call("unshare(CLONE_NEWPID)", Sysno.unshare, (long)Clone3.CLONE_NEWPID);
            ctx.Log.Debug($"puppet {task.Pid} unshared its pid namespace for children to come");
        }
    }

    /// <summary>A nested task's process group as the tree's pid namespace numbers it (getpgid inside it cannot name
    /// a leader outside its own namespace): NSpgid at the tree's level, from crisp's /proc.</summary>
    public static int TreePgid(RestoreContext ctx, RestoreTask task)
    {
        int level = ProcStatus.Read(ctx.Root.HostPid).NSpid.Length - 1;
        var nspgid = ProcStatus.Read(task.HostPid).NSpgid;
        return level < nspgid.Length ? nspgid[level] : 0;
    }

    /// <summary>Group <paramref name="pgid"/> (the tree's number) as <paramref name="task"/>'s own namespace names it:
    /// its leader must be in the same nested namespace.</summary>
    public static int OwnPgid(RestoreContext ctx, RestoreTask task, int pgid)
    {
        var leader = ctx.Tasks.FirstOrDefault(t => t.Pid == pgid);
        if (leader is null || leader.Ids.PidNsId != task.Ids.PidNsId)
            throw new CrispException($"{task} in a nested pid namespace is in process group {pgid}, whose leader is not in its namespace: it cannot join it");
        return leader.OwnPid;
    }
}
