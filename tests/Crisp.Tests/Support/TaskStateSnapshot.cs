using Crisp.Linux.Proc;

namespace Crisp.Tests.Support;

/// <summary>Everything /proc says about a process tree and each of its threads, as (task, file, field) → text,
/// read from the real /proc. Taken before a dump and after the restore, two snapshots are compared by
/// <see cref="StateDiff"/>. Only normalisations that keep meaning are applied here (anonymous inode numbers
/// labelled, see <see cref="InodeLabels"/>; R/S/D folded, see <see cref="ProcessStateReader"/>); everything
/// else that may differ is on <see cref="StateAllowList"/>, where each entry says why.</summary>
internal sealed class TaskStateSnapshot
{
    public int Root { get; }
    public IReadOnlyList<int> Pids { get; }
    public IReadOnlyDictionary<StateKey, string> Facts { get; }

    private TaskStateSnapshot(int root, IReadOnlyList<int> pids, IReadOnlyDictionary<StateKey, string> facts)
    {
        Root = root;
        Pids = pids;
        Facts = facts;
    }

    /// <summary>The tree of <paramref name="root"/>: the root and all its descendants.</summary>
    public static TaskStateSnapshot OfTree(int root) => Of(root, TreePids(root));

    /// <summary>The tree once two readings 20 ms apart agree (at most 2 s): a workload that has just printed its
    /// ready line may still be on its way into its wait (its write's file position not yet stored, its
    /// sigsuspend mask not yet set), and a "before" read in that moment is a state the dump never sees.</summary>
    public static TaskStateSnapshot OfQuietTree(int root)
    {
        var deadline = DateTime.UtcNow.AddSeconds(2);
        var last = OfTree(root);
        while (DateTime.UtcNow < deadline)
        {
            Thread.Sleep(20);
            var now = OfTree(root);
            if (StateDiff.Between(last, now).Count == 0)
                return now;
            last = now;
        }
        return last;
    }

    /// <summary>The processes <paramref name="pids"/> (<paramref name="root"/> among them).</summary>
    public static TaskStateSnapshot Of(int root, IEnumerable<int> pids)
    {
        var list = pids.Distinct().Order().ToList();
        var facts = new SortedDictionary<StateKey, string>();
        var labels = new InodeLabels();
        facts[new StateKey("tree", "pids", "")] = string.Join(' ', list);
        // Fds of every process first, then memory: labels are handed out in the same order in both snapshots.
        var readers = list.Select(pid => new ProcessStateReader(pid, labels, facts)).ToList();
        foreach (var r in readers)
            r.ReadFds();
        foreach (var r in readers)
            r.PutFds();
        foreach (var r in readers)
            r.ReadRest();
        return new TaskStateSnapshot(root, list, facts);
    }

    /// <summary><paramref name="root"/> and its descendants (children of every thread, recursively), ascending.</summary>
    public static List<int> TreePids(int root)
    {
        var all = new List<int>();
        var queue = new Queue<int>([root]);
        while (queue.Count > 0)
        {
            int pid = queue.Dequeue();
            all.Add(pid);
            try
            {
                foreach (int child in ProcTasks.AllChildren(pid))
                    queue.Enqueue(child);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // gone or a zombie without a task directory to walk
            }
        }
        all.Sort();
        return all;
    }
}
