using Crisp.Compel.Puppets;
using Crisp.Dump;
using Crisp.Images;
using Crisp.Images.Proto;
using Crisp.Linux;
using Crisp.Linux.Proc;
using Crisp.Resources.Namespaces;
using Crisp.Restore;

namespace Crisp.Resources.Mounts;

/// <summary>A mount namespace of the tree's own (CRIU's model, criu/mount.c): every mount of the root task's
/// /proc/PID/mountinfo goes to mountpoints-NSID.img and every tmpfs's files to tmpfs-dev-DEV.tar.gz.img. At
/// restore the tree is rebuilt under --root in a new namespace made by a single-threaded holder puppet (crisp,
/// multithreaded, cannot enter a mount namespace): it unshares, makes everything it inherited private, makes the
/// mounts in the order <see cref="MountPlan"/> gives, then pivots into the new root and detaches the host's. The
/// files stages open the tree's files through /proc/HOLDER/root meanwhile (<see cref="PathInTree"/>). Once the
/// root puppet exists it joins the namespace by setns and makes the mounts that belong to its pid, ipc and net
/// namespaces (proc, sysfs, mqueue, cgroup); then the holder is killed.</summary>
public sealed class MountNamespace : INamespaceContent
{
    public NamespaceKind Kind => NamespaceKind.Mnt;

    public void Dump(DumpContext ctx, DumpTask root, uint id)
    {
        var mounts = MountInfo.Read(root.Pid);
        var external = ctx.Options.ExternalMounts;
        // An entry naming no mount of the tree is unused, as in CRIU: runc names every device node and masked
        // path that might have been bind-mounted (rootless, user namespaces) whether or not it was.
        foreach (string path in external.Keys)
            if (!mounts.Any(m => m.MountPoint == path))
                ctx.Log.Debug($"--external mnt[{path}]:{external[path]}: no mount at {path} in the tree: unused");
        var entries = mounts.Select(m => Entry(m, external.GetValueOrDefault(m.MountPoint))).ToList();
        var left = ctx.Options.AutoExternalMounts?.Mark(mounts, entries, MountInfo.Read(ProcessIds.Pid), ctx.Log) ?? [];
        MountPlan plan;
        try
        {
            plan = MountPlan.Of(entries, $"mount namespace of task {root.Pid}");
        }
        catch (CrispException e) when (left.FirstOrDefault(l => e.Message.Contains(MountPlan.Describe(entries.First(x => x.MntId == l.Key)) + " ")) is { Value: { } why })
        {
            // A mount autodetection left out for a missing flag: the refusal says which flag takes it.
            throw new CrispException($"{e.Message}; {why}");
        }
        // CRIU takes fsname only with its AUTO type, which crisp never writes: an image naming it otherwise is refused.
        ctx.Images.Write(ImageFile.Mountpoints(id), [.. entries.Select(e => { var c = e.Clone(); c.ClearFsname(); return c; })]);
        OvermountedReader? hidden = null;
        try
        {
            foreach (var tmpfs in plan.Mounts.Where(m => m.Origin == MountOrigin.Fresh && m.Entry.Fstype == MountFsTypes.Tmpfs))
            {
                string file = TmpfsArchive.FileName(tmpfs.Entry.RootDev);
                // A covered tmpfs is not what its path shows: it is read from a copy of the namespace with it uncovered.
                string dir = plan.IsHidden(tmpfs)
                    ? (hidden ??= OvermountedReader.Open(ctx, root.Pid)).Uncover(tmpfs.Entry)
                    : Procfs.Host.Path(root.Pid, $"root{MountMaker.Join(tmpfs.Path)}");
                using var output = ctx.Images.CreateStream(file);
                int n = TmpfsArchive.Write(dir, output);
                ctx.Log.Debug($"mounts: {n} entries of tmpfs {tmpfs.Path}{(plan.IsHidden(tmpfs) ? " (overmounted)" : "")} in {file}");
            }
        }
        finally
        {
            hidden?.Dispose();
        }
        ctx.Log.Info($"mount namespace {id}: {entries.Count} mount(s), {plan.Mounts.Count(m => m.Origin == MountOrigin.External)} external");
    }

    /// <summary>A mountinfo line as CRIU's mnt_entry (dump_one_mountpoint): root_dev in the kernel's encoding
    /// (major &lt;&lt; 20 | minor), flags of the mount and its propagation, the superblock's flags and its other options.</summary>
    internal static mnt_entry Entry(MountInfoEntry m, string? externalKey)
    {
        var (sbFlags, rest) = MountFlags.OfSuper(m.SuperOptions);
        var e = new mnt_entry
        {
            Fstype = MountFsTypes.Code(m.FsType),
            MntId = (uint)m.MountId,
            RootDev = (m.Major << 20) | m.Minor,
            ParentMntId = (uint)m.ParentId,
            Flags = MountFlags.OfMount(m.Options, m.OptionalFields),
            Root = m.Root,
            Mountpoint = m.MountPoint,
            Source = m.Source,
            Options = rest,
            SharedId = (uint)m.SharedGroup,
            MasterId = (uint)m.MasterGroup,
            SbFlags = sbFlags,
            Fsname = m.FsType,   // for messages; not written (see Dump)
        };
        if (externalKey is not null)
            e.ExtKey = externalKey;
        return e;
    }

    public void Prepare(RestoreContext ctx, uint id)
    {
        var file = ImageFile.Mountpoints(id);
        if (!ctx.Images.Exists(file))
            throw new CrispException($"{ctx.Images.PathOf(file)}: missing (the root task has a mount namespace of its own)");
        var plan = MountPlan.Of(ctx.Images.ReadAll<mnt_entry>(file), file.FileName);
        string root = ctx.Options.Root
            ?? throw new CrispException("the checkpoint's tree has a mount namespace of its own: restore needs --root PATH (its root file system)");
        if (!Directory.Exists(root))
            throw new CrispException($"--root {root}: not a directory");
        root = MountMaker.Join(root);
        foreach (var m in plan.Mounts.Where(m => m.Origin == MountOrigin.External))
        {
            string host = ExternalSource(ctx.Options, m);
            if (PathCalls.TryLstat(host) is null)
                throw new CrispException(m.Entry.ExtKey == AutoExternalMounts.Key
                    ? $"{m.Describe} is bound from {host} (found external at dump), which does not exist"
                    : $"--external mnt[{m.Entry.ExtKey}]:{host}: {host} does not exist");
        }
        foreach (var m in plan.Mounts.Where(m => m.Origin == MountOrigin.Fresh && m.Entry.Fstype == MountFsTypes.Tmpfs))
            if (!File.Exists(Path.Combine(ctx.Images.Path, TmpfsArchive.FileName(m.Entry.RootDev))))
                throw new CrispException($"{Path.Combine(ctx.Images.Path, TmpfsArchive.FileName(m.Entry.RootDev))}: missing (the files of tmpfs {m.Path})");

        var state = ctx.Namespaces.Mounts;
        state.Plan = plan;
        state.Holder = Puppet.Spawn(ctx.Seizer);
        var holder = state.Holder;
        holder.Call("unshare(CLONE_NEWNS)", Sysno.unshare, (long)Clone3.CLONE_NEWNS);
        var maker = new MountMaker(holder, root, Procfs.Host.Path(holder.Pid, $"root{root}"), ctx.Images, m => ExternalSource(ctx.Options, m), ctx.Log)
        {
            MakePty = (index, ptmx) => ctx.Files.Ptys.MakeForMount(ctx, index, ptmx),
        };
        // Nothing made from here on may reach the host's mounts: all of the copy is private first.
        maker.Mount("make the new namespace private", null, "/", null, MountFlags.MS_REC | MountFlags.MS_PRIVATE, null);
        foreach (var m in plan.Mounts.Where(m => !m.Late))
            maker.Make(m);
        maker.Pivot(root);
        state.PathPrefix = Procfs.Host.Path(holder.Pid, "root");
        ctx.Log.Info($"mounts: {plan.Mounts.Count(m => !m.Late)} mount(s) made under {root} in a new mount namespace");
    }

    public void Restore(RestoreContext ctx, RestoreTask root, uint id) { }

    /// <summary>Right after the root puppet exists, before it makes any other task: it joins the new mount
    /// namespace (setns: it is single-threaded), makes the mounts of its own namespaces, and the holder goes.</summary>
    public static void EnterNamespace(RestoreContext ctx)
    {
        var state = ctx.Namespaces.Mounts;
        if (state.Holder is not { } holder || state.Plan is not { } plan)
            return;
        var root = ctx.Root.Puppet;
        // crisp's own fds (shared memory, memfds) are handed to the puppets as /proc/CRISP/fd/N, which the
        // container's /proc does not show: the host's directory is kept open at a known number, inherited by
        // every task cloned from the root, until the files stage replaces all fds.
        string crispFds = Procfs.Host.Path(Environment.ProcessId, "fd");
        ulong dirAt = root.Remote.PutOnScratch(System.Text.Encoding.UTF8.GetBytes(crispFds + "\0"));
        int dir = (int)root.Call($"open({crispFds})", Sysno.openat, FileIo.AT_FDCWD, (long)dirAt, FileIo.O_PATH | FileIo.O_DIRECTORY | FileIo.O_CLOEXEC);
        if (dir != CrispFdDir)
        {
            root.Call("dup3", Sysno.dup3, dir, CrispFdDir, FileIo.O_CLOEXEC);
            root.Remote.Syscall(Sysno.close, dir);
        }
        string ns = Procfs.Host.Path(holder.Pid, "ns/mnt");
        ulong at = root.Remote.PutOnScratch(System.Text.Encoding.UTF8.GetBytes(ns + "\0"));
        int fd = (int)root.Call($"open({ns})", Sysno.openat, FileIo.AT_FDCWD, (long)at, FileIo.O_RDONLY | FileIo.O_CLOEXEC);
        try
        {
            root.Call("setns(CLONE_NEWNS)", Sysno.setns, fd, (long)Clone3.CLONE_NEWNS);
        }
        finally
        {
            root.Remote.Syscall(Sysno.close, fd);
        }
        var maker = new MountMaker(root, "", Procfs.Host.Path(root.Pid, "root"), ctx.Images, m => ExternalSource(ctx.Options, m), ctx.Log)
        {
            MakePty = (index, ptmx) => ctx.Files.Ptys.MakeForMount(ctx, index, ptmx),
        };
        foreach (var m in plan.Mounts.Where(m => m.Late))
            maker.Make(m);
        // Last, once nothing more is mounted below them: what was a peer of a host mount's group joins it again.
        foreach (var m in plan.Mounts.Where(m => m.JoinsHostGroup))
            maker.JoinHostGroup(m);
        foreach (var m in plan.Mounts)
            maker.MakeUnbindable(m);
        state.PathPrefix = Procfs.Host.Path(root.Pid, "root");
        KillHolder(ctx);
        ctx.Log.Info($"mounts: the root joined the new mount namespace; {plan.Mounts.Count(m => m.Late)} mount(s) made by it");
    }

    /// <summary>The host path an external mount is bound from: --external mnt[KEY]:PATH for its key, or for one found
    /// external at dump (CRIU:AUTOGENERATED) the path written as its source, given --ext-mount-map auto.</summary>
    internal static string ExternalSource(RestoreOptions options, PlannedMount m)
    {
        var e = m.Entry;
        if (e.ExtKey == AutoExternalMounts.Key)
            return options.AutoExternalMounts is not null ? e.Source
                : throw new CrispException($"{m.Describe} was found external at dump (bound from {e.Source}): restore needs --ext-mount-map auto (or --external mnt[])");
        return options.ExternalMounts.TryGetValue(e.ExtKey, out var host) ? host
            : throw new CrispException($"{m.Describe} is external ({e.ExtKey}): restore needs --external mnt[{e.ExtKey}]:PATH");
    }

    /// <summary>The fd number at which every puppet of a tree with its own mount namespace holds crisp's
    /// /proc/CRISP/fd directory during the memory stage (see <see cref="OpenInPuppet"/>).</summary>
    public const int CrispFdDir = 1000;

    /// <summary>openat in a puppet for a path crisp names: /proc/CRISP/fd/N through the held directory when the
    /// puppet is in another mount namespace than crisp (the container's /proc does not show crisp), else as is.</summary>
    public static int OpenInPuppet(RestoreTask task, string path, int flags)
    {
        string prefix = Procfs.Host.Path(Environment.ProcessId, "fd/");
        bool viaDir = path.StartsWith(prefix, StringComparison.Ordinal)
            && NamespaceKind.Mnt.InodeOf(task.HostPid) != NamespaceKind.Mnt.InodeOf(Environment.ProcessId);
        string name = viaDir ? path[prefix.Length..] : path;
        ulong at = task.Puppet.Remote.PutOnScratch(System.Text.Encoding.UTF8.GetBytes(name + "\0"));
        return (int)task.Call($"openat({path})", Sysno.openat, viaDir ? CrispFdDir : FileIo.AT_FDCWD, (long)at, flags | FileIo.O_CLOEXEC);
    }

    /// <summary>As <see cref="OpenInPuppet"/> for many paths in one batch of openat calls (the names side by side on the
    /// puppet's data page); fails naming the first path that could not be opened, closing those that were.</summary>
    public static int[] OpenAllInPuppet(RestoreTask task, IReadOnlyList<(string Path, int Flags)> files)
    {
        if (files.Count == 0)
            return [];
        string prefix = Procfs.Host.Path(Environment.ProcessId, "fd/");
        bool otherNs = NamespaceKind.Mnt.InodeOf(task.HostPid) != NamespaceKind.Mnt.InodeOf(Environment.ProcessId);
        var names = new List<byte>();
        var calls = new List<Compel.RemoteCall>();
        var offsets = new List<(int Offset, bool ViaDir, int Flags)>();
        foreach (var (path, flags) in files)
        {
            bool viaDir = otherNs && path.StartsWith(prefix, StringComparison.Ordinal);
            offsets.Add((names.Count, viaDir, flags));
            names.AddRange(System.Text.Encoding.UTF8.GetBytes((viaDir ? path[prefix.Length..] : path) + "\0"));
        }
        var remote = task.Puppet.Remote;
        if (names.Count > remote.ScratchDataSize / 2)
            return [.. files.Select(f => OpenInPuppet(task, f.Path, f.Flags))];
        ulong at = remote.PutOnScratch(names.ToArray());
        var results = remote.Syscalls([.. offsets.Select(o => new Compel.RemoteCall(Sysno.openat, o.ViaDir ? CrispFdDir : FileIo.AT_FDCWD,
            (long)at + o.Offset, o.Flags | FileIo.O_CLOEXEC))]);
        int failed = Array.FindIndex(results, r => r < 0);
        if (failed >= 0)
        {
            remote.Syscalls([.. results.Where(r => r >= 0).Select(fd => new Compel.RemoteCall(Sysno.close, fd))]);
            Compel.RemoteTask.ThrowIfFailed(results[failed], $"openat({files[failed].Path}) in thread {task.Puppet.Pid}");
        }
        return [.. results.Select(r => (int)r)];
    }

    /// <summary>Where crisp finds a path of the tree: inside its mount namespace when it has one of its own.</summary>
    public static string PathInTree(RestoreContext ctx, string path) =>
        ctx.Namespaces.Mounts.PathPrefix is { } prefix && path.StartsWith('/') ? prefix + path : path;

    /// <summary>As <see cref="PathInTree"/> for a file dumped on mount <paramref name="mntId"/>: one that is not a
    /// mount of the tree's namespace was on crisp's own (the host's: a runtime's /dev/null or log file given as
    /// stdio) and is opened there, as CRIU opens files of its own root namespace.</summary>
    public static string PathOnMount(RestoreContext ctx, string path, int mntId) =>
        ctx.Namespaces.Mounts.Plan is { } plan && mntId > 0 && !plan.Mounts.Any(m => m.Entry.MntId == (uint)mntId) ? path : PathInTree(ctx, path);

    /// <summary>Kills the holder (a failed restore: its namespace goes with it and with the puppets).</summary>
    public static void KillHolder(RestoreContext ctx)
    {
        var state = ctx.Namespaces.Mounts;
        if (state.Holder is not { } holder)
            return;
        state.Holder = null;
        try { holder.Kill(); }
        catch (Exception e) { ctx.Log.Error($"killing the mount namespace holder {holder.Pid}: {e.Message}"); }
    }

    public sealed class State
    {
        public MountPlan? Plan { get; set; }
        public Puppet? Holder { get; set; }
        public string? PathPrefix { get; set; }
    }
}
