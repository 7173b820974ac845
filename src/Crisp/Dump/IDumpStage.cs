namespace Crisp.Dump;

/// <summary>One kind of state, collected from each seized task (in the Resources/&lt;Kind&gt; folder).</summary>
public interface IDumpStage
{
    string Name { get; }

    /// <summary>Collects this kind of state of <paramref name="task"/>: into its core entries or its own images.</summary>
    void Dump(DumpContext ctx, DumpTask task);

    /// <summary>After every task: writes images shared by the whole tree (files.img, pipes…).</summary>
    void Finish(DumpContext ctx) { }

    /// <summary>After the tree was killed (<paramref name="killed"/>) or let go, or the dump failed:
    /// lets go of what the stage held for the dump (e.g. sockets in TCP repair mode).</summary>
    void Release(DumpContext ctx, bool killed) { }
}
