using Crisp.Dump;
using Crisp.Linux;

namespace Crisp.Resources.Core;

/// <summary>Processes of the tree that share an address space, file table, fs state or signal handlers
/// (clone with CLONE_VM, CLONE_FILES, CLONE_FS or CLONE_SIGHAND but not CLONE_THREAD). Restore gives every
/// process its own, so such a tree is refused by name before anything is collected. kcmp orders kernel
/// objects, so one sort per kind finds every pair without comparing all of them.
/// (SysV semaphore undo lists cannot be told apart this way: kcmp sees two empty lists as equal.)</summary>
public static class SharedResources
{
    private static readonly (int Type, string What, string Flag)[] Kinds =
    [
        (Kcmp.KCMP_VM, "an address space", "CLONE_VM"),
        (Kcmp.KCMP_FILES, "a file table", "CLONE_FILES"),
        (Kcmp.KCMP_FS, "fs state (root, cwd, umask)", "CLONE_FS"),
        (Kcmp.KCMP_SIGHAND, "signal handlers", "CLONE_SIGHAND"),
    ];

    public static void Refuse(DumpContext ctx)
    {
        if (ctx.Tasks.Count < 2)
            return;
        foreach (var (type, what, flag) in Kinds)
        {
            var pids = ctx.Tasks.Select(t => t.Pid).ToList();
            pids.Sort((a, b) => a == b ? 0 : Kcmp.Compare(a, b, type) switch { 0 => 0, 1 => -1, 2 => 1, _ => a.CompareTo(b) });
            for (int i = 1; i < pids.Count; i++)
                if (Kcmp.Compare(pids[i - 1], pids[i], type) == 0)
                    throw new CrispException($"tasks {Math.Min(pids[i - 1], pids[i])} and {Math.Max(pids[i - 1], pids[i])} share {what} ({flag} without CLONE_THREAD): not supported yet");
        }
    }
}
