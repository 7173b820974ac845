using Crisp.Compel.Puppets;
using Crisp.Images.Proto;

namespace Crisp.Restore;

/// <summary>One process being restored: its images' entries and the puppet being shaped into it.</summary>
public sealed class RestoreTask(pstree_entry entry, IReadOnlyList<RestoreThread> threads, RestoreTask? parent)
{
    /// <summary>The task's PID as the images number it: in its own pid namespace (CRIU's virtual pid).</summary>
    public int Pid => (int)Entry.Pid;
    /// <summary>The puppet's PID in crisp's pid namespace, for ptrace, /proc and signals sent by crisp. Equal
    /// to <see cref="Pid"/> unless the tree has a pid namespace of its own.</summary>
    public int HostPid => Puppet.Pid;
    public pstree_entry Entry { get; } = entry;
    /// <summary>Levels of pid namespaces it is nested below the tree's (0: in the tree's own).</summary>
    public int Depth => Entry.NsPids.Count;
    /// <summary>Its pid in its own pid namespace: what getpid() gives it, and what a syscall made inside it names it by.</summary>
    public int OwnPid => Depth > 0 ? (int)Entry.NsPids[^1] : Pid;
    /// <summary>Its pid at every level from the tree's down to its own (pstree pid, then crisp's ns_pids).</summary>
    public int[] Pids => [Pid, .. Entry.NsPids.Select(p => (int)p)];
    /// <summary>The thread's id in the task's own pid namespace.</summary>
    public int OwnTid(int tid) => Threads.FirstOrDefault(t => t.Tid == tid)?.Tids[^1] ?? tid;
    public RestoreTask? Parent { get; } = parent;
    public List<RestoreTask> Children { get; } = [];
    /// <summary>Its children that were zombies at dump: re-made and exited with their status by PuppetTreeBuilder.</summary>
    public List<RestoreZombie> Zombies { get; } = [];

    /// <summary>Threads, leader first, each with its core-TID.img entry.</summary>
    public IReadOnlyList<RestoreThread> Threads { get; } = threads;
    public RestoreThread Leader => Threads[0];

    /// <summary>The threads other than the leader that exist in the puppet so far (made by ThreadBuilder).</summary>
    public IEnumerable<RestoreThread> OtherThreads => Threads.Skip(1).Where(t => t.Remote is not null);
    /// <summary>Every thread that exists in the puppet, leader first, with what per-thread stages need:
    /// remote syscalls in that thread (state such as rseq, creds, seccomp acts on the caller only) and
    /// its thread_core entry. Threads whose core has no thread_core are left out.</summary>
    public IEnumerable<(Compel.RemoteTask Remote, int Tid, thread_core_entry Core)> ThreadCores
    {
        get
        {
            if (Leader.Core.ThreadCore is { } leader)
                yield return (Puppet.Remote, Pid, leader);
            foreach (var t in OtherThreads)
                if (t.Core.ThreadCore is { } tc)
                    yield return (t.Remote!, t.Tid, tc);
        }
    }

    public core_entry Core => Leader.Core;
    public task_core_entry TaskCore => Core.Tc;
    public task_kobj_ids_entry Ids => Core.Ids;

    /// <summary>The puppet (set once the tree of puppets exists).</summary>
    public Puppet Puppet { get; set; } = null!;

    /// <summary>Runs a syscall in the puppet; throws naming it when it fails.</summary>
    public long Call(string name, long nr, long a1 = 0, long a2 = 0, long a3 = 0, long a4 = 0, long a5 = 0, long a6 = 0)
        => Puppet.Call(name, nr, a1, a2, a3, a4, a5, a6);

    public override string ToString() => $"task {Pid}";
}

public sealed record RestoreThread(int Tid, core_entry Core)
{
    /// <summary>Its ids below the tree's pid namespace (pstree.img's crisp ns_tids); none in the tree's own.</summary>
    public int[] NestedTids { get; init; } = [];
    /// <summary>Its id at every level from the tree's pid namespace down to its own.</summary>
    public int[] Tids => [Tid, .. NestedTids];

    /// <summary>The thread once made: the puppet's own for the leader, <see cref="ThreadBuilder"/>'s for the others.</summary>
    public Compel.SeizedThread? Seized { get; set; }

    /// <summary>The thread's id in crisp's pid namespace (<see cref="Tid"/> is the images', the tree's own).</summary>
    public int HostTid => Seized?.Tid ?? throw new InvalidOperationException($"thread {Tid} does not exist yet");

    /// <summary>Remote syscalls in this thread (non-leaders, once made).</summary>
    public Compel.RemoteTask? Remote { get; set; }
}

/// <summary>A zombie of the checkpoint (core task_state TASK_DEAD): made as a child of its parent's puppet with
/// its PID, session and group, named, then made to exit with the dumped status, so the parent's wait()
/// returns the same PID and status as it would have.</summary>
public sealed class RestoreZombie(pstree_entry entry, core_entry core, RestoreTask parent)
{
    public int Pid => (int)Entry.Pid;
    /// <summary>Its pid at every level from the tree's pid namespace down to its own, as <see cref="RestoreTask.Pids"/>.</summary>
    public int[] Pids => [Pid, .. Entry.NsPids.Select(p => (int)p)];
    public pstree_entry Entry { get; } = entry;
    public core_entry Core { get; } = core;
    public RestoreTask Parent { get; } = parent;
    public Puppet? Puppet { get; set; }
    public override string ToString() => $"zombie {Pid}";
}
