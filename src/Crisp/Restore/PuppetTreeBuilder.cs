using Crisp.Compel.Puppets;
using Crisp.Linux;

namespace Crisp.Restore;

/// <summary>Makes one puppet per task with the task's PID and parent: the root is cloned (CLONE_PARENT)
/// from a spawned puppet, so it is crisp's own child, then every other task inside its parent. The root gets
/// the tree's own namespaces (CLONE_NEWPID: it is PID 1 of a new pid namespace, and set_tid gives every
/// other task its pid there; the host numbers them as it likes). Then sessions and process groups, leaders
/// before members (by the images' pids, from inside the tasks). <paramref name="rootEnters"/>: what the root does
/// once it exists, before it clones anyone (it enters the tree's namespaces). <paramref name="beforeChildren"/>: what
/// each task does once it exists, before it clones its children (the memory they share with it copy-on-write).</summary>
public sealed class PuppetTreeBuilder(IReadOnlyList<TreeStep> rootEnters, IReadOnlyList<TaskStep> beforeChildren)
{
    public void Build(RestoreContext ctx)
    {
        // A mount namespace of the tree's own is built beforehand by a holder puppet; the root joins it by setns.
        ulong namespaces = Resources.Namespaces.NamespacesRestore.RootCloneFlags(ctx) & ~Clone3.CLONE_NEWNS;
        if (ctx.Options.Sibling)
            ctx.Root.Puppet = Puppet.SpawnSibling(ctx.Seizer, ctx.Root.Pid, namespaces);
        else
        {
            var first = Puppet.Spawn(ctx.Seizer);
            try
            {
                ctx.Root.Puppet = first.Clone(ctx.Root.Pid, sibling: true, namespaces);
            }
            finally
            {
                first.Kill();
            }
        }
        // Namespaces the tree had of its own are made by the root before it clones anyone.
        foreach (var step in rootEnters)
        {
            ctx.Log.Debug($"root puppet: {step.Name}");
            step.Run(ctx);
        }
        // CRIU's call points once the root is in its namespaces, before any other task exists.
        if (namespaces != 0 && ctx.Options.Scripts is { } scripts)
        {
            scripts.InitPid = ctx.Root.Puppet.Pid;
            scripts.RunOrThrow(Scripts.ScriptAction.SetupNamespaces);
            scripts.RunOrThrow(Scripts.ScriptAction.PostSetupNamespaces);
        }
        // Leaders first: a child inherits its parent's session and group when it is cloned. Nested pid
        // namespaces are made on the way (their init first, by a parent that unshares).
        foreach (var task in Resources.Namespaces.NestedPidNamespaces.CreationOrder(ctx.Tasks))
        {
            if (task.Parent is not null)
                task.Puppet = Resources.Namespaces.NestedPidNamespaces.Clone(ctx, task);
            task.Leader.Seized = task.Puppet.Thread;
            if (task.Entry.Sid == task.Entry.Pid)
                task.Call("setsid", Sysno.setsid);
            else if (task.Entry.Pgid == task.Entry.Pid)
                task.Call("setpgid(0, 0)", Sysno.setpgid, 0, 0);
            // ctx.Tasks lists parents before children: this runs before the task clones any of them.
            if (task.Children.Count > 0)
            {
                foreach (var step in beforeChildren)
                {
                    ctx.Log.Debug($"puppet {task.Pid}: {step.Name}, before its children");
                    step.Run(ctx, task);
                }
            }
        }
        // Zombies are made like any child, so that their ids can be set; they exit once every group exists.
        var zombies = ctx.Tasks.SelectMany(t => t.Zombies).ToList();
        foreach (var zombie in zombies)
        {
            zombie.Puppet = Resources.Namespaces.NestedPidNamespaces.Clone(zombie);
            if (zombie.Entry.Sid == zombie.Entry.Pid)
                zombie.Puppet.Call("setsid", Sysno.setsid);
            else if (zombie.Entry.Pgid == zombie.Entry.Pid)
                zombie.Puppet.Call("setpgid(0, 0)", Sysno.setpgid, 0, 0);
        }
        // Members of a group their parent is not in join it once its leader exists.
        foreach (var (puppet, entry) in ctx.Tasks.Select(t => (t.Puppet, t.Entry)).Concat(zombies.Select(z => (z.Puppet!, z.Entry))))
        {
            if (entry.NsPids.Count > 0)
                continue;
            long pgid = puppet.Call("getpgid", Sysno.getpgid, 0);
            if (pgid != entry.Pgid)
                puppet.Call($"setpgid(0, {entry.Pgid})", Sysno.setpgid, 0, entry.Pgid);
        }
        foreach (var task in ctx.Tasks.Where(t => t.Depth > 0))
        {
            // Inside a nested pid namespace getpgid cannot name a leader outside it: compared at the tree's level.
            if (Resources.Namespaces.NestedPidNamespaces.TreePgid(ctx, task) != task.Entry.Pgid)
            {
                int pgid = Resources.Namespaces.NestedPidNamespaces.OwnPgid(ctx, task, (int)task.Entry.Pgid);
                task.Call($"setpgid(0, {pgid})", Sysno.setpgid, 0, pgid);
            }
        }
        foreach (var zombie in zombies)
            MakeZombie(ctx, zombie);
        Resources.Namespaces.NestedPidNamespaces.UnshareForChildrenToCome(ctx);
        // Each exit queued a SIGCHLD in the parent (held: a puppet blocks everything); the parent's pending
        // signals must be those of the images, restored later, so it is taken back out.
        foreach (var parent in zombies.Select(z => z.Parent).Distinct())
            DropPendingSigchld(parent.Puppet);
        ctx.Log.Info($"puppets ready for {ctx.Tasks.Count} task(s){(zombies.Count > 0 ? $", {zombies.Count} zombie(s)" : "")}");
    }

    private static void MakeZombie(RestoreContext ctx, RestoreZombie zombie)
    {
        var puppet = zombie.Puppet!;
        Resources.Core.CoreRestore.SetName(puppet.Remote, zombie.Pid, zombie.Core.Tc.Comm);
        uint wanted = zombie.Core.Tc.ExitCode;
        var status = puppet.ExitWith(wanted);
        ctx.Log.Debug($"zombie {zombie.Pid} ({zombie.Core.Tc.Comm}) of {zombie.Parent.Pid}: {status}");
        int sig = (int)(wanted & 0x7f), code = (int)((wanted >> 8) & 0xff);
        bool same = sig != 0 ? status.Signaled && (status.TermSignal == sig || status.TermSignal == 6) : status.Exited && status.ExitCode == code;
        if (!same)
            throw new CrispException($"zombie {zombie.Pid} ended with {status}, not with status 0x{wanted:x}");
    }

    private static void DropPendingSigchld(Puppet parent)
    {
        const int SIGCHLD = 17;
        var buffer = new byte[24];   // sigset_t (8 bytes), then a zero timespec: do not wait
        BitConverter.TryWriteBytes(buffer, 1UL << (SIGCHLD - 1));
        ulong at = parent.Remote.PutOnScratch(buffer);
        long r = parent.Remote.Syscall(Sysno.rt_sigtimedwait, (long)at, 0, (long)at + 8, 8);
        if (r < 0 && r != -Errnos.EAGAIN)
            throw new SyscallException($"rt_sigtimedwait(SIGCHLD) in puppet {parent.Pid}", (int)-r);
    }

    /// <summary>Kills every puppet made so far (they are traced with EXITKILL too, should crisp die).</summary>
    public void KillAll(RestoreContext ctx)
    {
        Resources.Mounts.MountNamespace.KillHolder(ctx);
        foreach (var zombie in ctx.Tasks.SelectMany(t => t.Zombies))
        {
            if (zombie.Puppet is { Thread.IsDetached: false } puppet)
            {
                try { puppet.Kill(); }
                catch (Exception e) { ctx.Log.Error($"killing puppet {zombie.Pid}: {e.Message}"); }
            }
        }
        foreach (var task in ctx.Tasks.AsEnumerable().Reverse())
        {
            if (task.Puppet is null)
                continue;
            try { task.Puppet.Kill(); }
            catch (Exception e) { ctx.Log.Error($"killing puppet {task.Pid}: {e.Message}"); }
        }
    }
}
