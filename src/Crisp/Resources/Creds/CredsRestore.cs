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

    // Where the calls' memory arguments sit on the thread's scratch data.
    private const int PdeathAt = 0, ResuidAt = 8, ResgidAt = 24, CapsAt = 40, GroupsAt = 72;

    /// <summary>Three batches of remote calls per thread (what is there now; the changes; what must come last),
    /// each one stop of the thread where call by call took ~15: a 100-thread restore made ~1,500 stops here. A batch
    /// runs every call whatever the ones before returned; the results are checked in order afterwards, and a failure
    /// fails the restore (the tree is killed), so calls that ran after it do not matter.</summary>
    public static void RestoreThread(RemoteTask thread, int tid, creds_entry c)
    {
        var at = thread.PutOnScratch(ScratchData(c));
        // What the thread has now. A change of euid/fsuid/egid/fsgid or capabilities resets dumpable and the
        // parent-death signal (commit_creds): keep what earlier stages set, and put it back at the end.
        var now = new CallList(thread, tid);
        int dumpableCall = now.Add("prctl(PR_GET_DUMPABLE)", Sysno.prctl, Prctl.PR_GET_DUMPABLE);
        now.Add("prctl(PR_GET_PDEATHSIG)", Sysno.prctl, Prctl.PR_GET_PDEATHSIG, (long)(at + PdeathAt));
        now.Add("getresuid", Sysno.getresuid, (long)(at + ResuidAt), (long)(at + ResuidAt + 4), (long)(at + ResuidAt + 8));
        now.Add("getresgid", Sysno.getresgid, (long)(at + ResgidAt), (long)(at + ResgidAt + 4), (long)(at + ResgidAt + 8));
        int fsuidCall = now.Add(_ => { }, Sysno.setfsuid, -1);   // returns the current fsuid, never an error
        int fsgidCall = now.Add(_ => { }, Sysno.setfsgid, -1);
        int secbitsCall = now.Add("prctl(PR_GET_SECUREBITS)", Sysno.prctl, Prctl.PR_GET_SECUREBITS);
        var r = now.Run();
        var got = new byte[CapsAt];
        thread.ReadMemory(at, got);
        long dumpable = r[dumpableCall];
        int pdeath = BinaryPrimitives.ReadInt32LittleEndian(got.AsSpan(PdeathAt));
        uint U(int offset) => BinaryPrimitives.ReadUInt32LittleEndian(got.AsSpan(offset));
        bool idsMatch = U(ResuidAt) == c.Uid && U(ResuidAt + 4) == c.Euid && U(ResuidAt + 8) == c.Suid
            && U(ResgidAt) == c.Gid && U(ResgidAt + 4) == c.Egid && U(ResgidAt + 8) == c.Sgid
            && r[fsuidCall] == c.Fsuid && r[fsgidCall] == c.Fsgid;
        long secbits = r[secbitsCall];

        // The changes, in the order the kernel permits (the class summary).
        var change = new CallList(thread, tid);
        change.Add($"setgroups({c.Groups.Count} groups)", Sysno.setgroups, c.Groups.Count, (long)(at + GroupsAt));
        if (!idsMatch)
        {
            secbits |= 1 << SECURE_NO_SETUID_FIXUP;
            change.Add("prctl(PR_SET_SECUREBITS, NO_SETUID_FIXUP)", Sysno.prctl, Prctl.PR_SET_SECUREBITS, secbits);
            change.Add($"setresgid({c.Gid}, {c.Egid}, {c.Sgid})", Sysno.setresgid, c.Gid, c.Egid, c.Sgid);
            change.Add(_ => { }, Sysno.setfsgid, c.Fsgid);   // returns the previous fsgid
            change.Add(fsgid => { if (fsgid != c.Fsgid) throw new CrispException($"thread {tid}: could not set fsgid {c.Fsgid}"); }, Sysno.setfsgid, -1);
            change.Add($"setresuid({c.Uid}, {c.Euid}, {c.Suid})", Sysno.setresuid, c.Uid, c.Euid, c.Suid);
            change.Add(_ => { }, Sysno.setfsuid, c.Fsuid);
            change.Add(fsuid => { if (fsuid != c.Fsuid) throw new CrispException($"thread {tid}: could not set fsuid {c.Fsuid}"); }, Sysno.setfsuid, -1);
        }
        if (secbits != c.Secbits)
            change.Add($"prctl(PR_SET_SECUREBITS, 0x{c.Secbits:x})", Sysno.prctl, Prctl.PR_SET_SECUREBITS, c.Secbits);
        foreach (int cap in BoundingDrops(c))
        {
            // As CRIU: a cap that cannot be dropped is harmless when no_new_privs will be set and the
            // cap is not permitted (it can never be gained again).
            change.Add(res =>
            {
                if (res < 0 && !(c.NoNewPrivs != 0 && (CapWords.Get(c.CapPrm) & (1UL << cap)) == 0))
                    throw new SyscallException($"prctl(PR_CAPBSET_DROP, {cap}) in thread {tid}", (int)-res);
            }, Sysno.prctl, Prctl.PR_CAPBSET_DROP, cap);
        }
        change.Add(res => CheckCapset(thread, tid, c, res), Sysno.capset, (long)(at + CapsAt), (long)(at + CapsAt + 8));
        ulong ambient = CapWords.Get(c.CapAmb);
        for (int cap = 0; cap < 64; cap++)
            if ((ambient & (1UL << cap)) != 0)
                change.Add($"prctl(PR_CAP_AMBIENT_RAISE, {cap})", Sysno.prctl, Prctl.PR_CAP_AMBIENT, Prctl.PR_CAP_AMBIENT_RAISE, cap);
        int dumpableAfter = change.Add("prctl(PR_GET_DUMPABLE)", Sysno.prctl, Prctl.PR_GET_DUMPABLE);
        r = change.Run();

        // Last: no_new_privs cannot be undone, and nothing after this should need privileges.
        var last = new CallList(thread, tid);
        if (r[dumpableAfter] != dumpable)
            last.Add($"prctl(PR_SET_DUMPABLE, {dumpable})", Sysno.prctl, Prctl.PR_SET_DUMPABLE, dumpable);
        if (pdeath != 0)
            last.Add($"prctl(PR_SET_PDEATHSIG, {pdeath})", Sysno.prctl, Prctl.PR_SET_PDEATHSIG, pdeath);
        if (c.HasNoNewPrivs && c.NoNewPrivs != 0)
            last.Add("prctl(PR_SET_NO_NEW_PRIVS)", Sysno.prctl, Prctl.PR_SET_NO_NEW_PRIVS, 1);
        last.Run();
    }

    /// <summary>The scratch data every call of <see cref="RestoreThread"/> points into: room for what the reads
    /// return, capset's header and data, then the groups.</summary>
    private static byte[] ScratchData(creds_entry c)
    {
        var b = new byte[GroupsAt + Math.Max(4, c.Groups.Count * 4)];
        ulong eff = CapWords.Get(c.CapEff), prm = CapWords.Get(c.CapPrm), inh = CapWords.Get(c.CapInh);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(CapsAt), Capabilities.LINUX_CAPABILITY_VERSION_3);
        for (int w = 0; w < 2; w++)
        {
            int o = CapsAt + 8 + w * 12;
            BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(o), (uint)(eff >> (32 * w)));
            BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(o + 4), (uint)(prm >> (32 * w)));
            BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(o + 8), (uint)(inh >> (32 * w)));
        }
        for (int i = 0; i < c.Groups.Count; i++)
            BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(GroupsAt + i * 4), c.Groups[i]);
        return b;
    }

    /// <summary>The capabilities the bounding set must lose (none when the image has no bounding set).</summary>
    private static List<int> BoundingDrops(creds_entry c)
    {
        var drops = new List<int>();
        if (c.CapBnd.Count == 0)
            return drops;
        ulong keep = CapWords.Get(c.CapBnd);
        for (int cap = 0; cap <= CapLastCap.Value; cap++)
            if ((keep & (1UL << cap)) == 0)
                drops.Add(cap);
        return drops;
    }

    private static readonly Lazy<int> CapLastCap = new(() =>
        int.Parse(File.ReadAllText("/proc/sys/kernel/cap_last_cap").Trim(), System.Globalization.CultureInfo.InvariantCulture));

    private static void CheckCapset(RemoteTask thread, int tid, creds_entry c, long r)
    {
        if (r == -Errnos.EPERM)
        {
            ulong prm = CapWords.Get(c.CapPrm), inh = CapWords.Get(c.CapInh);
            var now = Linux.Proc.ProcStatus.ReadThread(thread.Thread.Pid, thread.Thread.Tid);
            throw new CrispException($"thread {tid}: cannot restore capabilities (permitted {prm:x16}, " +
                $"inheritable {inh:x16}): the task may only keep what it has (permitted {now.CapPrm:x16}, " +
                $"bounding {now.CapBnd:x16})");
        }
        if (r < 0)
            throw new SyscallException($"capset in thread {tid}", (int)-r);
    }

    /// <summary>Remote calls of one thread gathered for one batch (<see cref="RemoteTask.CallAll(IReadOnlyList{ValueTuple{RemoteCall, Action{long}}})"/>),
    /// each with its check: a named call fails the restore with its name when it returned an error.</summary>
    private sealed class CallList(RemoteTask thread, int tid)
    {
        private readonly List<(RemoteCall, Action<long>)> _calls = [];

        public int Add(string name, long nr, long a1 = 0, long a2 = 0, long a3 = 0, long a4 = 0) =>
            Add(r => RemoteTask.ThrowIfFailed(r, $"{name} in thread {tid}"), nr, a1, a2, a3, a4);

        public int Add(Action<long> check, long nr, long a1 = 0, long a2 = 0, long a3 = 0, long a4 = 0)
        {
            _calls.Add((new RemoteCall(nr, a1, a2, a3, a4), check));
            return _calls.Count - 1;
        }

        public long[] Run() => _calls.Count == 0 ? [] : thread.CallAll(_calls);
    }
}
