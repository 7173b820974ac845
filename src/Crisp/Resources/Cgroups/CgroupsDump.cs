using Crisp.Dump;
using Crisp.Images;
using Crisp.Images.Proto;

namespace Crisp.Resources.Cgroups;

/// <summary>cgroup.img, as CRIU writes it: each distinct set of cgroups a task is in (crisp's own first, id 1), the
/// task's set id in its core (cg_set), and per hierarchy the dirs from its root down to each task's cgroup with
/// their properties (memory limits, pids.max, cpu shares…) and owner/mode. A tree wholly in crisp's cgroups writes
/// no image (as CRIU: the restore leaves it where crisp is). --manage-cgroups=ignore dumps nothing.</summary>
public sealed class CgroupsDump : IDumpStage
{
    public string Name => "cgroups";

    public void Dump(DumpContext ctx, DumpTask task)
    {
        if (ctx.Options.CgroupMode == CgroupMode.Ignore)
            return;
        var state = ctx.Cgroups;
        if (state.Sets.Count == 0)
            state.IdOf(Dumped(ctx, Environment.ProcessId));
        task.Leader.Core.Tc.CgSet = state.IdOf(Dumped(ctx, task.Pid));
        state.Used.Add(task.Leader.Core.Tc.CgSet);
    }

    public void Finish(DumpContext ctx)
    {
        var state = ctx.Cgroups;
        if (ctx.Options.CgroupMode == CgroupMode.Ignore || state.Used.All(id => id == 1))
            return;
        var entry = new cgroup_entry();
        for (int i = 0; i < state.Sets.Count; i++)
        {
            var set = new cg_set_entry { Id = (uint)(i + 1) };
            set.Ctls.AddRange(state.Sets[i].Select(m => new cg_member_entry { Name = m.Key, Path = m.Value }));
            // The tree's cgroup namespace root (CRIU copies the root's prefix to every set of the tree).
            if (i > 0)
                foreach (var member in set.Ctls)
                    if (ctx.Namespaces.CgroupRoots.Prefixes.TryGetValue(member.Name, out uint prefix) && prefix > 0 && prefix <= member.Path.Length)
                        member.CgnsPrefix = prefix;
            entry.Sets.Add(set);
        }
        var mounts = Linux.Proc.MountInfo.Read(0);
        var used = state.Used.Where(id => id != 1).Select(id => state.Sets[(int)id - 1]).ToList();
        foreach (var hierarchy in used.SelectMany(s => s.Keys).Distinct().Order(StringComparer.Ordinal))
        {
            string mount = CgroupMounts.Find(mounts, hierarchy)
                ?? throw new CrispException($"cgroup hierarchy '{hierarchy}' of the tree is not mounted for crisp: cannot read its cgroups");
            var controller = new cg_controller_entry();
            controller.Cnames.AddRange(hierarchy.Split(','));
            foreach (var path in used.Select(s => s.GetValueOrDefault(hierarchy)).OfType<string>().Distinct())
                AddPath(controller.Dirs, mount, hierarchy, path, ctx.Options.CgroupProps);
            entry.Controllers.Add(controller);
        }
        ctx.Images.Write(ImageFile.Cgroup, entry);
        ctx.Log.Info($"cgroups: {entry.Sets.Count} set(s), {entry.Controllers.Count} hierarchy(ies)");
    }

    /// <summary>A task's cgroups in the hierarchies dumped (all, or those --cgroup-dump-controller names).</summary>
    private static SortedDictionary<string, string> Dumped(DumpContext ctx, int pid)
    {
        var all = CgroupMembership.Read(pid);
        var wanted = ctx.Options.CgroupDumpControllers;
        return wanted.Count == 0 ? all : new(all.Where(m => CgroupMounts.IsNamed(m.Key, wanted)).ToDictionary(), StringComparer.Ordinal);
    }

    /// <summary>Adds the dirs of <paramref name="path"/> ("/a/b": a, then b below it) to the tree, each once.</summary>
    private static void AddPath(Google.Protobuf.Collections.RepeatedField<cgroup_dir_entry> dirs, string mount, string hierarchy, string path, CgroupPropsSpec props)
    {
        string at = "";
        foreach (var name in path.Split('/', StringSplitOptions.RemoveEmptyEntries))
        {
            at += "/" + name;
            var dir = dirs.FirstOrDefault(d => d.DirName == name);
            if (dir is null)
            {
                dir = Read(CgroupMounts.Dir(mount, at), name, hierarchy, props);
                dirs.Add(dir);
            }
            dirs = dir.Children;
        }
    }

    private static cgroup_dir_entry Read(string fullPath, string name, string hierarchy, CgroupPropsSpec props)
    {
        var dir = new cgroup_dir_entry { DirName = name };
        dir.DirPerms = Perms(fullPath);
        foreach (var property in CgroupProperties.Of(hierarchy, props))
        {
            string file = Path.Combine(fullPath, property);
            if (!File.Exists(file))
                continue;
            string value;
            try { value = File.ReadAllText(file).Trim(); }
            catch (IOException) { continue; }   // write-only or gone
            dir.Properties.Add(new cgroup_prop_entry { Name = property, Value = value });
        }
        return dir;
    }

    /// <summary>struct stat's st_mode, st_uid, st_gid (x86-64: at 24, 28, 32).</summary>
    private static cgroup_perms Perms(string path)
    {
        using var fd = Linux.FileIo.Open(path, Linux.FileIo.O_RDONLY | Linux.FileIo.O_CLOEXEC | 0x10000 /* O_DIRECTORY */);
        Span<byte> st = stackalloc byte[Linux.FileStat.Size];
        Linux.FileStat.Fstat(fd.Fd, st);
        return new cgroup_perms
        {
            Mode = System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(st[24..]),
            Uid = System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(st[28..]),
            Gid = System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(st[32..]),
        };
    }

    /// <summary>Dump-wide: the cgroup sets met, numbered in order, and those a task uses.</summary>
    public sealed class State
    {
        public List<SortedDictionary<string, string>> Sets { get; } = [];
        public HashSet<uint> Used { get; } = [];

        public uint IdOf(SortedDictionary<string, string> set)
        {
            int i = Sets.FindIndex(s => s.SequenceEqual(set));
            if (i < 0)
            {
                Sets.Add(set);
                i = Sets.Count - 1;
            }
            return (uint)(i + 1);
        }
    }
}
