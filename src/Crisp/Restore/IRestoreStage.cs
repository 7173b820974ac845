namespace Crisp.Restore;

/// <summary>One kind of state, re-created in each puppet (in the Resources/&lt;Kind&gt; folder).</summary>
public interface IRestoreStage
{
    string Name { get; }

    /// <summary>Once, before any task: read this kind's tree-wide images and create shared objects
    /// in crisp itself (files, pipes…), so sharing between tasks comes out right by construction.</summary>
    void Prepare(RestoreContext ctx) { }

    /// <summary>Re-creates this kind of state of <paramref name="task"/> in its puppet.</summary>
    void Restore(RestoreContext ctx, RestoreTask task);

    /// <summary>After every task (success or not): release what Prepare made.</summary>
    void Cleanup(RestoreContext ctx) { }

    /// <summary>Participants that run right after this one, in each of its phases (the fd kinds' steps after the
    /// files stage has installed a task's fds, as CRIU's post_open). They are pipeline participants of their own:
    /// prepared, restored per task, cleaned up, and named for fault injection.</summary>
    IEnumerable<IRestoreStage> Then => [];
}
