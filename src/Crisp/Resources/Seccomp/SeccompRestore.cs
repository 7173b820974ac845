using System.Runtime.InteropServices;
using Crisp.Compel;
using Crisp.Images;
using Crisp.Images.Proto;
using Crisp.Linux;
using Crisp.Restore;

namespace Crisp.Resources.Seccomp;

/// <summary>Installs each task's filters oldest first, with their flags, while the puppet is still root
/// (CAP_SYS_ADMIN, so no_new_privs is not needed yet); strict mode likewise. Puppets are traced with
/// PTRACE_O_SUSPEND_SECCOMP, so the remote syscalls that follow (credentials, release) are not filtered.</summary>
public sealed class SeccompRestore : IRestoreStage
{
    public string Name => "seccomp";

    /// <summary>Restore-wide: seccomp.img's filters, read at Prepare.</summary>
    public sealed class Loaded
    {
        public List<seccomp_filter>? Filters;
    }

    public void Prepare(RestoreContext ctx)
    {
        var file = new ImageFile(ImageKind.Seccomp, null);
        var entries = ctx.Images.ReadAll<seccomp_entry>(file);
        ctx.Seccomp.Filters = entries.SelectMany(e => e.SeccompFilters).ToList();
    }

    public void Restore(RestoreContext ctx, RestoreTask task)
    {
        // Per thread, each in itself, with the same bytes and flags (a chain shared through TSYNC comes
        // out as identical chains, which filter the same way).
        foreach (var (remote, tid, tc) in task.ThreadCores)
            RestoreThread(ctx, remote, tid, tc);
    }

    /// <summary>One thread's seccomp mode and filter chain, installed in that thread.</summary>
    public static void RestoreThread(RestoreContext ctx, RemoteTask remote, int tid, thread_core_entry? thread)
    {
        if (thread is not null && RestoreThread(remote, tid, thread, ctx.Seccomp.Filters ?? []))
            ctx.Log.Debug($"seccomp: restored the seccomp state of thread {tid}");
    }

    /// <summary>One thread's mode and filter chain, run in that thread (seccomp acts on the calling thread
    /// only; no TSYNC, so threads with different chains each get their own). Returns whether anything was set.</summary>
    public static bool RestoreThread(RemoteTask thread, int tid, thread_core_entry tc, IReadOnlyList<seccomp_filter> filters)
    {
        if (!tc.HasSeccompMode || tc.SeccompMode == seccomp_mode.Disabled)
            return false;
        if (tc.SeccompMode == seccomp_mode.Strict)
        {
            RemoteTask.ThrowIfFailed(thread.Syscall(Sysno.prctl, Prctl.PR_SET_SECCOMP, Linux.Seccomp.SECCOMP_MODE_STRICT),
                $"prctl(PR_SET_SECCOMP, SECCOMP_MODE_STRICT) in thread {tid}");
            return true;
        }
        if (!tc.HasSeccompFilter)
            throw new CrispException($"core-{tid}.img: seccomp filter mode without a filter");
        foreach (var f in SeccompChains.Chain(filters, tc.SeccompFilter))
            Install(thread, tid, f);
        return true;
    }

    /// <summary>seccomp(SECCOMP_SET_MODE_FILTER, flags, &amp;prog) with the program and sock_fprog on the data pages.</summary>
    private static unsafe void Install(RemoteTask thread, int tid, seccomp_filter f)
    {
        byte[] program = f.Filter.ToByteArray();
        if (program.Length == 0 || program.Length % sizeof(SockFilter) != 0)
            throw new CrispException($"seccomp.img: a filter of {program.Length} bytes is not a BPF program");
        int count = program.Length / sizeof(SockFilter);
        var buffer = new byte[sizeof(SockFprog) + program.Length];
        program.CopyTo(buffer, sizeof(SockFprog));
        ulong at = thread.PutOnScratch(new byte[sizeof(SockFprog)]);   // maps the scratch page if needed
        var fprog = new SockFprog { Length = (ushort)count, Filter = (nint)(at + (ulong)sizeof(SockFprog)) };
        MemoryMarshal.Write(buffer, in fprog);
        thread.PutOnScratch(buffer);
        uint flags = f.HasFlags ? f.Flags : 0;
        RemoteTask.ThrowIfFailed(thread.Syscall(Sysno.seccomp, Linux.Seccomp.SECCOMP_SET_MODE_FILTER, flags, (long)at),
            $"seccomp(SECCOMP_SET_MODE_FILTER, 0x{flags:x}) of a {count}-instruction filter in thread {tid}");
    }

}
