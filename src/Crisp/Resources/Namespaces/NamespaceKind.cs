using System.Globalization;
using Crisp.Images.Proto;
using Crisp.Linux.Proc;
using Crisp.Linux;

namespace Crisp.Resources.Namespaces;

/// <summary>One kind of Linux namespace: its name under /proc/PID/ns, its CLONE_NEW* flag and its field in
/// task_kobj_ids_entry (CRIU's <c>*_ns_id</c>).</summary>
public sealed class NamespaceKind
{
    private readonly Func<task_kobj_ids_entry, uint?> _get;
    private readonly Action<task_kobj_ids_entry, uint> _set;

    private NamespaceKind(string name, ulong cloneFlag, int field, Func<task_kobj_ids_entry, uint?> get, Action<task_kobj_ids_entry, uint> set)
    {
        Name = name;
        CloneFlag = cloneFlag;
        IdsField = field;
        _get = get;
        _set = set;
    }

    /// <summary>As /proc/PID/ns names it and CRIU's messages say it: pid, net, ipc, uts, time, mnt, user, cgroup.</summary>
    public string Name { get; }
    public ulong CloneFlag { get; }
    /// <summary>Field number of its id in task_kobj_ids_entry.</summary>
    public int IdsField { get; }

    public override string ToString() => Name;

    /// <summary>The namespace's id in <paramref name="ids"/>; null when the images do not say.</summary>
    public uint? IdIn(task_kobj_ids_entry? ids) => ids is null ? null : _get(ids);
    public void SetIn(task_kobj_ids_entry ids, uint id) => _set(ids, id);

    /// <summary>The kernel's identity of task <paramref name="hostPid"/>'s namespace of this kind (the nsfs inode
    /// of /proc/PID/ns/NAME); null when this kernel has no such namespace. <paramref name="entry"/> names another
    /// link of the same kind (pid_for_children, time_for_children).</summary>
    public ulong? InodeOf(int hostPid, string? entry = null)
    {
        string link = Procfs.Host.Path(hostPid, $"ns/{entry ?? Name}");
        string? target;
        try { target = new FileInfo(link).LinkTarget; }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { target = null; }
        if (target is null)
        {
            if (!Procfs.Host.Exists(hostPid))
                throw new CrispException($"task {hostPid} is gone (reading {link})");
            return null;
        }
        // "uts:[4026531838]"
        int open = target.IndexOf('['), close = target.IndexOf(']');
        if (open < 0 || close < open)
            throw new CrispException($"{link}: unexpected target '{target}'");
        return ulong.Parse(target.AsSpan(open + 1, close - open - 1), NumberStyles.None, CultureInfo.InvariantCulture);
    }

    public static readonly NamespaceKind Pid = new("pid", Clone3.CLONE_NEWPID, 5, i => i.HasPidNsId ? i.PidNsId : null, (i, v) => i.PidNsId = v);
    public static readonly NamespaceKind Net = new("net", Clone3.CLONE_NEWNET, 6, i => i.HasNetNsId ? i.NetNsId : null, (i, v) => i.NetNsId = v);
    public static readonly NamespaceKind Ipc = new("ipc", Clone3.CLONE_NEWIPC, 7, i => i.HasIpcNsId ? i.IpcNsId : null, (i, v) => i.IpcNsId = v);
    public static readonly NamespaceKind Uts = new("uts", Clone3.CLONE_NEWUTS, 8, i => i.HasUtsNsId ? i.UtsNsId : null, (i, v) => i.UtsNsId = v);
    public static readonly NamespaceKind Mnt = new("mnt", Clone3.CLONE_NEWNS, 9, i => i.HasMntNsId ? i.MntNsId : null, (i, v) => i.MntNsId = v);
    public static readonly NamespaceKind User = new("user", Clone3.CLONE_NEWUSER, 10, i => i.HasUserNsId ? i.UserNsId : null, (i, v) => i.UserNsId = v);
    public static readonly NamespaceKind Cgroup = new("cgroup", Clone3.CLONE_NEWCGROUP, 11, i => i.HasCgroupNsId ? i.CgroupNsId : null, (i, v) => i.CgroupNsId = v);
    public static readonly NamespaceKind Time = new("time", Clone3.CLONE_NEWTIME, 12, i => i.HasTimeNsId ? i.TimeNsId : null, (i, v) => i.TimeNsId = v);

    /// <summary>Every kind, in the order CRIU numbers them (dump_task_ns_ids).</summary>
    public static IReadOnlyList<NamespaceKind> All { get; } = [Pid, Net, Ipc, Uts, Time, Mnt, User, Cgroup];

    /// <summary>"pid, uts" for a set of CLONE_NEW* flags.</summary>
    public static string Names(ulong flags) => string.Join(", ", All.Where(k => (flags & k.CloneFlag) != 0).Select(k => k.Name));
}
