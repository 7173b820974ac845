using System.Buffers.Binary;
using Crisp.Compel;
using Crisp.Images.Proto;
using Crisp.Linux;
using Crisp.Restore;

namespace Crisp.Resources.Creds;

/// <summary>Credentials, the last stage: once they are the task's own, the puppet may no longer be
/// allowed anything. The order is the one the kernel permits (as CRIU's restorer): groups and ids while
/// still privileged (SECURE_NO_SETUID_FIXUP keeps the capabilities across the uid change), securebits,
/// bounding-set drops (need CAP_SETPCAP), capset, ambient raises, no_new_privs.</summary>
public sealed class CredsRestore : IRestoreStage
{
    private const int SECURE_NO_SETUID_FIXUP = 2;

    public string Name => "creds";

    public void Restore(RestoreContext ctx, RestoreTask task)
    {
        // Credentials are per thread in the kernel (raw setresuid and friends change the caller only).
        foreach (var (remote, tid, tc) in task.ThreadCores)
            if (tc.Creds is { } creds)
                RestoreThread(remote, tid, creds);
    }

    public static void RestoreThread(RemoteTask thread, int tid, creds_entry c)
    {
        var calls = new Calls(thread, tid);
        // A change of euid/fsuid/egid/fsgid or capabilities resets dumpable and the parent-death signal
        // (commit_creds): keep what earlier stages set, and put it back at the end.
        long dumpable = calls.Run("prctl(PR_GET_DUMPABLE)", Sysno.prctl, Prctl.PR_GET_DUMPABLE);
        int pdeath = BinaryPrimitives.ReadInt32LittleEndian(calls.Get(4, at => calls.Run("prctl(PR_GET_PDEATHSIG)", Sysno.prctl, Prctl.PR_GET_PDEATHSIG, (long)at)));

        SetGroups(calls, c);
        if (!IdsMatch(calls, c))
        {
            long secbits = calls.Run("prctl(PR_GET_SECUREBITS)", Sysno.prctl, Prctl.PR_GET_SECUREBITS);
            calls.Run("prctl(PR_SET_SECUREBITS, NO_SETUID_FIXUP)", Sysno.prctl, Prctl.PR_SET_SECUREBITS, secbits | (1 << SECURE_NO_SETUID_FIXUP));
            calls.Run($"setresgid({c.Gid}, {c.Egid}, {c.Sgid})", Sysno.setresgid, c.Gid, c.Egid, c.Sgid);
            calls.Thread.Syscall(Sysno.setfsgid, c.Fsgid);   // returns the previous fsgid, never an error
            if (calls.Thread.Syscall(Sysno.setfsgid, -1) != c.Fsgid)
                throw new CrispException($"thread {tid}: could not set fsgid {c.Fsgid}");
            calls.Run($"setresuid({c.Uid}, {c.Euid}, {c.Suid})", Sysno.setresuid, c.Uid, c.Euid, c.Suid);
            calls.Thread.Syscall(Sysno.setfsuid, c.Fsuid);
            if (calls.Thread.Syscall(Sysno.setfsuid, -1) != c.Fsuid)
                throw new CrispException($"thread {tid}: could not set fsuid {c.Fsuid}");
        }
        if (calls.Run("prctl(PR_GET_SECUREBITS)", Sysno.prctl, Prctl.PR_GET_SECUREBITS) != c.Secbits)
            calls.Run($"prctl(PR_SET_SECUREBITS, 0x{c.Secbits:x})", Sysno.prctl, Prctl.PR_SET_SECUREBITS, c.Secbits);

        DropFromBoundingSet(calls, c);
        SetCaps(calls, c);
        ulong ambient = CapWords.Get(c.CapAmb);
        for (int cap = 0; cap < 64; cap++)
            if ((ambient & (1UL << cap)) != 0)
                calls.Run($"prctl(PR_CAP_AMBIENT_RAISE, {cap})", Sysno.prctl, Prctl.PR_CAP_AMBIENT, Prctl.PR_CAP_AMBIENT_RAISE, cap);

        if (calls.Run("prctl(PR_GET_DUMPABLE)", Sysno.prctl, Prctl.PR_GET_DUMPABLE) != dumpable)
            calls.Run($"prctl(PR_SET_DUMPABLE, {dumpable})", Sysno.prctl, Prctl.PR_SET_DUMPABLE, dumpable);
        if (pdeath != 0)
            calls.Run($"prctl(PR_SET_PDEATHSIG, {pdeath})", Sysno.prctl, Prctl.PR_SET_PDEATHSIG, pdeath);
        // Last: no_new_privs cannot be undone, and nothing after this should need privileges.
        if (c.HasNoNewPrivs && c.NoNewPrivs != 0)
            calls.Run("prctl(PR_SET_NO_NEW_PRIVS)", Sysno.prctl, Prctl.PR_SET_NO_NEW_PRIVS, 1);
    }

    private static void SetGroups(Calls calls, creds_entry c)
    {
        var bytes = new byte[Math.Max(4, c.Groups.Count * 4)];
        for (int i = 0; i < c.Groups.Count; i++)
            BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(i * 4), c.Groups[i]);
        ulong at = calls.Thread.PutOnScratch(bytes);
        calls.Run($"setgroups({c.Groups.Count} groups)", Sysno.setgroups, c.Groups.Count, (long)at);
    }

    private static bool IdsMatch(Calls calls, creds_entry c)
    {
        byte[] u = calls.Get(12, at => calls.Run("getresuid", Sysno.getresuid, (long)at, (long)at + 4, (long)at + 8));
        byte[] g = calls.Get(12, at => calls.Run("getresgid", Sysno.getresgid, (long)at, (long)at + 4, (long)at + 8));
        uint U(byte[] b, int i) => BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(i * 4));
        return U(u, 0) == c.Uid && U(u, 1) == c.Euid && U(u, 2) == c.Suid
            && U(g, 0) == c.Gid && U(g, 1) == c.Egid && U(g, 2) == c.Sgid
            && calls.Thread.Syscall(Sysno.setfsuid, -1) == c.Fsuid && calls.Thread.Syscall(Sysno.setfsgid, -1) == c.Fsgid;
    }

    private static void DropFromBoundingSet(Calls calls, creds_entry c)
    {
        if (c.CapBnd.Count == 0)
            return;
        ulong keep = CapWords.Get(c.CapBnd);
        int last = int.Parse(File.ReadAllText("/proc/sys/kernel/cap_last_cap").Trim(), System.Globalization.CultureInfo.InvariantCulture);
        for (int cap = 0; cap <= last; cap++)
        {
            if ((keep & (1UL << cap)) != 0)
                continue;
            long r = calls.Thread.Syscall(Sysno.prctl, Prctl.PR_CAPBSET_DROP, cap);
            // As CRIU: a cap that cannot be dropped is harmless when no_new_privs will be set and the
            // cap is not permitted (it can never be gained again).
            if (r < 0 && !(c.NoNewPrivs != 0 && (CapWords.Get(c.CapPrm) & (1UL << cap)) == 0))
                throw new SyscallException($"prctl(PR_CAPBSET_DROP, {cap}) in thread {calls.Tid}", (int)-r);
        }
    }

    private static void SetCaps(Calls calls, creds_entry c)
    {
        ulong eff = CapWords.Get(c.CapEff), prm = CapWords.Get(c.CapPrm), inh = CapWords.Get(c.CapInh);
        var b = new byte[8 + 2 * 12];
        BinaryPrimitives.WriteUInt32LittleEndian(b, Capabilities.LINUX_CAPABILITY_VERSION_3);
        for (int w = 0; w < 2; w++)
        {
            int o = 8 + w * 12;
            BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(o), (uint)(eff >> (32 * w)));
            BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(o + 4), (uint)(prm >> (32 * w)));
            BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(o + 8), (uint)(inh >> (32 * w)));
        }
        ulong at = calls.Thread.PutOnScratch(b);
        long r = calls.Thread.Syscall(Sysno.capset, (long)at, (long)at + 8);
        if (r == -Errnos.EPERM)
        {
            var now = Linux.Proc.ProcStatus.ReadThread(calls.Thread.Thread.Pid, calls.Thread.Thread.Tid);
            throw new CrispException($"thread {calls.Tid}: cannot restore capabilities (permitted {prm:x16}, " +
                $"inheritable {inh:x16}): the task may only keep what it has (permitted {now.CapPrm:x16}, " +
                $"bounding {now.CapBnd:x16})");
        }
        if (r < 0)
            throw new SyscallException($"capset in thread {calls.Tid}", (int)-r);
    }

    /// <summary>Remote calls in one thread, failing with the call's name.</summary>
    private sealed class Calls(RemoteTask thread, int tid)
    {
        public RemoteTask Thread { get; } = thread;
        public int Tid { get; } = tid;

        public long Run(string name, long nr, long a1 = 0, long a2 = 0, long a3 = 0, long a4 = 0)
            => Thread.Call(name, nr, a1, a2, a3, a4);

        public byte[] Get(int size, Action<ulong> call)
        {
            ulong at = Thread.PutOnScratch(new byte[size]);
            call(at);
            var b = new byte[size];
            Thread.ReadMemory(at, b);
            return b;
        }
    }
}
