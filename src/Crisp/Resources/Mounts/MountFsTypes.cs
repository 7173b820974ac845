namespace Crisp.Resources.Mounts;

/// <summary>CRIU's fstype numbers (images/mnt.proto enum fstype) by file system name, and which file systems
/// crisp makes afresh at restore rather than binding them from somewhere.</summary>
public static class MountFsTypes
{
    public const uint Unsupported = 0, Proc = 1, Sysfs = 2, Devtmpfs = 3, Tmpfs = 5, Devpts = 6, Mqueue = 14,
        Cgroup = 12, Cgroup2 = 23;

    private static readonly Dictionary<string, uint> Codes = new(StringComparer.Ordinal)
    {
        ["proc"] = Proc, ["sysfs"] = Sysfs, ["devtmpfs"] = Devtmpfs, ["binfmt_misc"] = 4, ["tmpfs"] = Tmpfs,
        ["devpts"] = Devpts, ["simfs"] = 7, ["pstore"] = 8, ["securityfs"] = 9, ["fusectl"] = 10, ["debugfs"] = 11,
        ["cgroup"] = Cgroup, ["aufs"] = 13, ["mqueue"] = Mqueue, ["fuse"] = 15, ["overlay"] = 17, ["autofs"] = 18,
        ["tracefs"] = 19, ["cgroup2"] = Cgroup2,
    };

    /// <summary>CRIU's code for a mountinfo type ("fuse.sshfs" counts as fuse); 0 (unsupported) when it has none.</summary>
    public static uint Code(string fsType)
    {
        int dot = fsType.IndexOf('.');
        return Codes.TryGetValue(dot < 0 ? fsType : fsType[..dot], out uint code) ? code : Unsupported;
    }

    public static string Name(uint code) => Codes.FirstOrDefault(c => c.Value == code).Key ?? "unsupported";

    /// <summary>File systems crisp mounts afresh: their contents are the kernel's (proc, sysfs, mqueue, cgroup),
    /// a new devpts instance, or a tmpfs filled from its archive.</summary>
    public static bool IsFresh(uint code) => code is Proc or Sysfs or Devpts or Mqueue or Tmpfs or Cgroup or Cgroup2;

    /// <summary>Those whose contents depend on the mounter's namespaces (pid, net, ipc, cgroup): made by the
    /// restored root itself, once it is in them.</summary>
    public static bool NeedsTreeNamespaces(uint code) => code is Proc or Sysfs or Mqueue or Cgroup or Cgroup2;
}
