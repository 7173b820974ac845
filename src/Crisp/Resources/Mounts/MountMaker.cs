using System.Text;
using Crisp.Compel.Puppets;
using Crisp.Images;
using Crisp.Images.Proto;
using Crisp.Linux;
using static Crisp.Resources.Mounts.MountFlags;

namespace Crisp.Resources.Mounts;

/// <summary>Makes planned mounts by remote mount(2) calls in a single-threaded puppet that is in the new mount
/// namespace (crisp, multithreaded, cannot enter one). <paramref name="basePath"/> is where the tree's "/" is
/// as the puppet sees it (--root before the pivot, "" after); <paramref name="crispBase"/> the same place as crisp
/// sees it (through /proc/PID/root), used to fill a tmpfs and to make a missing mount point on one.</summary>
internal sealed class MountMaker(Puppet puppet, string basePath, string crispBase, ImageDirectory images,
    Func<PlannedMount, string> externalSource, Log log)
{
    /// <summary>Makes pty N of a devpts (given its ptmx, as crisp sees it) before a bind of /dev/pts/N (a container's
    /// /dev/console) can be made: the pty must exist first, and it is the very one the tree's fds will get.</summary>
    public Action<uint, string>? MakePty { get; init; }

    public void Make(PlannedMount m)
    {
        var e = m.Entry;
        string target = Join(basePath, m.Path);
        // Before the mount point is made: it takes the type (file or directory) of what is bound.
        if (m.Origin == MountOrigin.Bind && m.From!.Entry.Fstype == MountFsTypes.Devpts && MakePty is not null
            && uint.TryParse(m.SubPath.TrimStart('/'), out uint pty) && PathCalls.TryLstat(Join(crispBase, m.From.Path, m.SubPath)) is null)
            MakePty(pty, Join(crispBase, m.From.Path, "ptmx"));
        if (m.Origin != MountOrigin.Root)
            EnsureMountPoint(m);
        switch (m.Origin)
        {
            case MountOrigin.Root:
                Mount($"bind --root {target}", target, target, null, MS_BIND, null);
                break;
            case MountOrigin.Fresh:
                string data = e.Options;
                if (e.Fstype == MountFsTypes.Devpts && !data.Split(',').Contains("newinstance"))
                    data = data.Length == 0 ? "newinstance" : "newinstance," + data;
                uint sb = e.SbFlags & ~(e.Fstype == MountFsTypes.Tmpfs ? MS_RDONLY : 0);
                Mount($"{m.FsName} at {m.Path}", e.Source.Length > 0 ? e.Source : m.FsName, target, m.FsName, sb, data);
                if (e.Fstype == MountFsTypes.Tmpfs)
                    Fill(m, target, data);
                break;
            case MountOrigin.Bind:
                Mount($"bind {m.From!.Path}{m.SubPath} at {m.Path}", Join(basePath, m.From.Path, m.SubPath), target, null, MS_BIND, null);
                break;
            case MountOrigin.External:
                AttachExternal(m, target);
                break;
        }
        Mount($"flags of {m.Path}", null, target, null, MS_REMOUNT | MS_BIND | (e.Flags & PerMount), null);
        SetPropagation(m, target);
        log.Debug($"mounts: {m.Describe} made ({m.Origin}{(m.From is { } f ? $" from {f.Entry.MntId}" : "")})");
    }

    /// <summary>A bind from an earlier peer is in its group already; a slave was bound from its master's group;
    /// anything else leaves the group of what it was bound from. Then a first member of a group is made shared.</summary>
    private void SetPropagation(PlannedMount m, string target)
    {
        var e = m.Entry;
        if (m.Origin == MountOrigin.External)
        {
            // The clone of the host's mount is in its peer group and has its master (CRIU binds it so). A slave of
            // that group or master stays one; a peer leaves the group until everything below it is made (a mount
            // made there now would reach the host), then joins it again (JoinHostGroup).
            Mount(e.MasterId != 0 ? $"slave {m.Path}" : $"private {m.Path}", null, target, null, e.MasterId != 0 ? MS_SLAVE : MS_PRIVATE, null);
            if (e.SharedId != 0 && !m.JoinsHostGroup)
                Mount($"shared {m.Path}", null, target, null, MS_SHARED, null);
            return;
        }
        if (e.SharedId != 0 && m.From is { } from && from.Entry.SharedId == e.SharedId)
            return;
        if (e.MasterId != 0)
            Mount($"slave {m.Path}", null, target, null, MS_SLAVE, null);
        else
            Mount($"private {m.Path}", null, target, null, MS_PRIVATE, null);
        if (e.SharedId != 0)
            Mount($"shared {m.Path}", null, target, null, MS_SHARED, null);
    }

    public void MakeUnbindable(PlannedMount m)
    {
        if ((m.Entry.Flags & MS_UNBINDABLE) != 0)
            Mount($"unbindable {m.Path}", null, Join(basePath, m.Path), null, MS_UNBINDABLE, null);
    }

    private void Fill(PlannedMount m, string target, string data)
    {
        string file = TmpfsArchive.FileName(m.Entry.RootDev);
        using (var input = images.OpenRead(file))
        {
            int n = TmpfsArchive.Extract(input, Join(crispBase, m.Path), file);
            log.Debug($"mounts: {n} entries of {file} restored into {m.Path}");
        }
        if ((m.Entry.SbFlags & MS_RDONLY) != 0)
            Mount($"read-only {m.Path}", null, target, null, MS_REMOUNT | m.Entry.SbFlags, data);
    }

    /// <summary>A mount point that lies on a tmpfs is made if the archive did not have it (tar leaves other
    /// mounts out): a directory, or an empty file for a bind of a file. Anywhere else it must exist already.</summary>
    private void EnsureMountPoint(PlannedMount m)
    {
        string here = Join(crispBase, m.Path);
        if (PathCalls.TryLstat(here) is not null)
            return;
        string? source = m.Origin switch
        {
            MountOrigin.External => externalSource(m),
            MountOrigin.Bind => Join(crispBase, m.From!.Path, m.SubPath),
            _ => null,
        };
        bool isDir = source is null || PathCalls.TryLstat(source) is not { } st || st.Type == 0x4000;
        string parent = Path.GetDirectoryName(here) ?? "/";
        if (PathCalls.TryLstat(parent) is not { Type: 0x4000 })
            throw new CrispException($"{m.Describe}: its mount point's directory {Path.GetDirectoryName(m.Path)} is missing in the restored tree");
        if (isDir)
            PathCalls.Mkdir(here, 0755);
        else
            using (new FileStream(here, FileMode.CreateNew, FileAccess.Write)) { }
        log.Debug($"mounts: made mount point {m.Path}");
    }

    /// <summary>Binds the caller's <paramref name="source"/> at <paramref name="target"/>. The source is a path in
    /// crisp's own mount namespace, which the root puppet no longer sees after the pivot (runc's cgroup v1 binds
    /// sit below /sys, made late): crisp clones it with open_tree, the puppet receives that detached mount and
    /// attaches it with move_mount.</summary>
    private void AttachExternal(PlannedMount m, string target)
    {
        string source = externalSource(m);
        long r = MoveMountFromHost(m, source, target, 0);
        if (r < 0)
            throw new CrispException($"mount (bind external {m.Entry.ExtKey} from {source} at {target}): {Errnos.Describe((int)-r)}");
    }

    /// <summary>Puts an external mount that was a peer of its host mount back in that mount's peer group
    /// (move_mount MOVE_MOUNT_SET_GROUP from a fresh clone of it: Linux 5.15), or in a new one if that mount is not
    /// shared (any more).</summary>
    public void JoinHostGroup(PlannedMount m)
    {
        const int MOVE_MOUNT_SET_GROUP = 0x100;
        string source = externalSource(m), target = Join(basePath, m.Path);
        long r = MoveMountFromHost(m, source, target, MOVE_MOUNT_SET_GROUP);
        if (r < 0)
            throw new CrispException($"mount (put {m.Path} in the peer group of {source}): {Errnos.Describe((int)-r)}");
        Mount($"shared {m.Path}", null, target, null, MS_SHARED, null);
        log.Debug($"mounts: {m.Describe} is in the peer group of {source} again");
    }

    /// <summary>move_mount in the puppet from a clone (open_tree) crisp makes of <paramref name="source"/> in its own
    /// namespace, which the puppet may no longer see (after the pivot); the clone has the host mount's propagation.</summary>
    private long MoveMountFromHost(PlannedMount m, string source, string target, int flags)
    {
        const int MOVE_MOUNT_F_EMPTY_PATH = 4, InPuppet = 100;
        UnixFd clone;
        try { clone = PathCalls.CloneMount(source); }
        catch (SyscallException e) { throw new CrispException($"external mount {m.Entry.ExtKey} ({m.Path}): cannot open {source}: {e.Message}"); }
        using (clone)
            Compel.Puppets.FdInstaller.Add(puppet, [new(InPuppet, clone.Fd, true)]);
        var (buffer, at) = Strings("", target);
        ulong scratch = puppet.Remote.PutOnScratch(buffer);
        long r = puppet.Remote.Syscall(Sysno.move_mount, InPuppet, (long)scratch + at[0], FileIo.AT_FDCWD, (long)scratch + at[1], MOVE_MOUNT_F_EMPTY_PATH | flags);
        puppet.Remote.Syscall(Sysno.close, InPuppet);
        return r;
    }

    /// <summary>umount2(MNT_DETACH) of what is mounted on top at <paramref name="path"/>.</summary>
    public void Detach(string path) => Call($"umount2({path}, MNT_DETACH)", Sysno.umount2, Join(basePath, path), flags: MNT_DETACH);

    public void Pivot(string root)
    {
        Call($"chdir({root})", Sysno.chdir, root);
        Call("pivot_root(., .)", Sysno.pivot_root, ".", ".");
        // The old root now lies on top of the new one: detach it (and everything of the host's below it).
        Call("umount2(., MNT_DETACH)", Sysno.umount2, ".", flags: MNT_DETACH);
        Call("chdir(/)", Sysno.chdir, "/");
    }

    public void Mount(string what, string? source, string target, string? type, uint flags, string? data)
    {
        var (buffer, at) = Strings(source, target, type, data);
        ulong scratch = puppet.Remote.PutOnScratch(buffer);
        long A(int i) => at[i] < 0 ? 0 : (long)scratch + at[i];
        long r = puppet.Remote.Syscall(Sysno.mount, A(0), A(1), A(2), flags, A(3));
        if (r < 0)
            throw new CrispException($"mount ({what}): {Errnos.Describe((int)-r)}");
    }

    /// <summary>A path call: one or two paths, or a path and flags.</summary>
    private void Call(string what, long nr, string a1, string? a2 = null, long flags = 0)
    {
        var (buffer, at) = Strings(a1, a2);
        ulong scratch = puppet.Remote.PutOnScratch(buffer);
        long r = puppet.Remote.Syscall(nr, (long)scratch + at[0], a2 is null ? flags : (long)scratch + at[1]);
        if (r < 0)
            throw new CrispException($"{what} in the new mount namespace: {Errnos.Describe((int)-r)}");
    }

    private static (byte[] Buffer, int[] At) Strings(params string?[] strings)
    {
        var buffer = new List<byte>();
        var at = new int[strings.Length];
        for (int i = 0; i < strings.Length; i++)
        {
            if (strings[i] is not { } s)
            {
                at[i] = -1;
                continue;
            }
            at[i] = buffer.Count;
            buffer.AddRange(Encoding.UTF8.GetBytes(s));
            buffer.Add(0);
        }
        return (buffer.Count == 0 ? [0] : [.. buffer], at);
    }

    /// <summary>Paths joined as the kernel reads them ("/" parts and empty ones collapse).</summary>
    public static string Join(params string[] parts)
    {
        var sb = new StringBuilder();
        foreach (string p in parts)
            foreach (string piece in p.Split('/', StringSplitOptions.RemoveEmptyEntries))
                sb.Append('/').Append(piece);
        return sb.Length == 0 ? "/" : sb.ToString();
    }
}
