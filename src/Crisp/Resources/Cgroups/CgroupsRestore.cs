using Crisp.Images;
using Crisp.Images.Proto;
using Crisp.Linux.Proc;
using Crisp.Restore;

namespace Crisp.Resources.Cgroups;

/// <summary>Puts the restored tasks back in their cgroups (cgroup.img and each core's cg_set), with CRIU's
/// --manage-cgroups meanings (<see cref="CgroupMode"/>). Before any task exists every dir is checked and the missing
/// ones are made (parents first) with their properties; a dir that cannot be made, or a mode's condition that does
/// not hold, is refused in one line and the dirs made so far are removed again. Each task then joins its cgroups by
/// crisp writing its pid to cgroup.procs, before its memory is filled (so it is charged there). A task in crisp's
/// own cgroups at dump (set 1) stays in crisp's. --cgroup-root [CTRL:]PATH puts the root task's cgroup at PATH and
/// the others' below it as they were below the root's.</summary>
public sealed class CgroupsRestore : IRestoreStage
{
    public string Name => "cgroups";

    public void Prepare(RestoreContext ctx)
    {
        var mode = ctx.Options.CgroupMode;
        if (mode == CgroupMode.Ignore || !ctx.Images.Exists(ImageFile.Cgroup))
            return;
        var entry = ctx.Images.ReadOne<cgroup_entry>(ImageFile.Cgroup);
        var sets = entry.Sets.GroupBy(s => s.Id).ToDictionary(g => g.Key, g => g.First());
        foreach (var task in ctx.Tasks.Where(t => t.TaskCore.CgSet > 1 && !sets.ContainsKey(t.TaskCore.CgSet)))
            throw new CrispException($"core-{task.Pid}.img: cgroup set {task.TaskCore.CgSet} is not in cgroup.img");
        var rootSet = sets.GetValueOrDefault(ctx.Root.TaskCore.CgSet);
        var mounts = MountInfo.Read(0);
        var state = ctx.Cgroups;
        var plan = new List<(string Dir, cgroup_dir_entry? Image, string Hierarchy)>();
        foreach (var id in ctx.Tasks.Select(t => t.TaskCore.CgSet).Where(id => id > 1).Distinct())
        {
            var targets = state.Targets[id] = [];
            foreach (var member in sets[id].Ctls)
            {
                string mount = CgroupMounts.Find(mounts, member.Name, ctx.Options.CgroupYard)
                    ?? throw new CrispException(ctx.Options.CgroupYard is { } yard
                        ? $"cgroup.img: cgroup hierarchy '{member.Name}' is not mounted below --cgroup-yard {yard}"
                        : $"cgroup.img: cgroup hierarchy '{member.Name}' is not mounted here");
                string? rootPath = rootSet?.Ctls.FirstOrDefault(c => c.Name == member.Name)?.Path;
                var (newRoot, newPath) = Reroot(ctx.Options.CgroupRoots, member.Name, member.Path, rootPath);
                var controller = entry.Controllers.FirstOrDefault(c => string.Join(',', c.Cnames) == member.Name);
                string at = "";
                foreach (var name in newPath.Split('/', StringSplitOptions.RemoveEmptyEntries))
                {
                    at += "/" + name;
                    string? original = newRoot is null ? at : at.Length >= newRoot.Length && at.StartsWith(newRoot, StringComparison.Ordinal)
                        ? (rootPath ?? "") + at[newRoot.Length..] : null;
                    string dir = CgroupMounts.Dir(mount, at);
                    if (!plan.Any(p => p.Dir == dir))
                        plan.Add((dir, original is null || controller is null ? null : FindDir(controller, original), member.Name));
                }
                targets.Add(CgroupMounts.Dir(mount, newPath));
                if (id == ctx.Root.TaskCore.CgSet && member.HasCgnsPrefix && member.CgnsPrefix > 0 && member.CgnsPrefix <= member.Path.Length)
                    state.NamespaceRoots.Add(CgroupMounts.Dir(mount, Reroot(ctx.Options.CgroupRoots, member.Name, member.Path[..(int)member.CgnsPrefix], rootPath).Path));
            }
        }
        var allTargets = state.Targets.Values.SelectMany(t => t).ToHashSet();
        // Every condition first, so that a refusal leaves nothing made.
        foreach (var (dir, _, _) in plan)
        {
            bool exists = Directory.Exists(dir);
            if (!exists && mode is CgroupMode.None or CgroupMode.Props)
                throw new CrispException($"cgroup {dir} does not exist (--manage-cgroups={mode.ToString().ToLowerInvariant()} makes none)");
            if (exists && mode == CgroupMode.Strict && allTargets.Contains(dir))
                throw new CrispException($"cgroup {dir} exists already (--manage-cgroups=strict)");
        }
        foreach (var (dir, image, hierarchy) in plan)
        {
            bool created = false;
            if (!Directory.Exists(dir))
            {
                try { Directory.CreateDirectory(dir); }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    throw new CrispException($"cannot create cgroup {dir}: {e.Message}");
                }
                state.Created.Add(dir);
                created = true;
                ctx.Log.Debug($"cgroup {dir} made");
            }
            if (created && hierarchy.Split(',').Contains("cpuset"))
                InheritCpuset(dir);
            if (image is not null && (created || mode is CgroupMode.Full or CgroupMode.Strict or CgroupMode.Props))
                SetProperties(ctx, dir, image);
        }
        ctx.Log.Info($"cgroups: {state.Targets.Count} set(s) to place tasks in, {state.Created.Count} dir(s) made ({mode.ToString().ToLowerInvariant()})");
    }

    public void Restore(RestoreContext ctx, RestoreTask task) => Join(ctx, task);

    /// <summary>The task joins its cgroups (again: harmless). Also called before a parent's puppet fills the memory its
    /// children will share (<see cref="Memory.MemoryRestore.PremapForChildren"/>), so those pages are charged there.</summary>
    public static void Join(RestoreContext ctx, RestoreTask task)
    {
        if (!ctx.Cgroups.Targets.TryGetValue(task.TaskCore.CgSet, out var targets))
            return;
        foreach (var dir in targets)
        {
            try { File.WriteAllText(Path.Combine(dir, "cgroup.procs"), task.HostPid.ToString(System.Globalization.CultureInfo.InvariantCulture)); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new CrispException($"task {task.Pid}: joining cgroup {dir}: {e.Message}");
            }
        }
    }

    /// <summary>The root puppet, about to unshare its cgroup namespace, goes into the dirs that are its roots.</summary>
    public static void EnterNamespaceRoots(RestoreContext ctx, RestoreTask root)
    {
        foreach (var dir in ctx.Cgroups.NamespaceRoots)
        {
            try { File.WriteAllText(Path.Combine(dir, "cgroup.procs"), root.HostPid.ToString(System.Globalization.CultureInfo.InvariantCulture)); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new CrispException($"the root task: entering cgroup {dir} (its cgroup namespace's root): {e.Message}");
            }
        }
    }

    /// <summary>A failed restore removes the dirs it made (deepest first; killed puppets leave them shortly).</summary>
    public void Cleanup(RestoreContext ctx)
    {
        var state = ctx.Cgroups;
        if (ctx.Released)
            return;
        foreach (var dir in Enumerable.Reverse(state.Created))
        {
            var deadline = DateTime.UtcNow.AddSeconds(5);
            while (true)
            {
                try
                {
                    Directory.Delete(dir);
                    break;
                }
                catch (IOException) when (DateTime.UtcNow < deadline && Directory.Exists(dir))
                {
                    Thread.Sleep(20);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    ctx.Log.Error($"removing cgroup {dir}: {e.Message}");
                    break;
                }
            }
        }
        state.Created.Clear();
    }

    /// <summary>The path <paramref name="path"/> of hierarchy <paramref name="hierarchy"/> goes to, with --cgroup-root: the
    /// root task's cgroup becomes the given root, the others keep their place below it. Returns (the new root or null, path).</summary>
    private static (string? NewRoot, string Path) Reroot(IReadOnlyList<(string Controller, string Path)> roots, string hierarchy, string path, string? rootPath)
    {
        var names = hierarchy.Split(',');
        var given = roots.LastOrDefault(r => r.Controller.Length > 0 && (r.Controller == hierarchy || names.Contains(r.Controller) || (hierarchy.Length == 0 && r.Controller == "unified")));
        if (given == default)
            given = roots.LastOrDefault(r => r.Controller.Length == 0);
        if (given == default)
            return (null, path);
        string newRoot = given.Path.TrimEnd('/');
        string relative = rootPath is not null && (path == rootPath || path.StartsWith(rootPath.TrimEnd('/') + "/", StringComparison.Ordinal))
            ? path[rootPath.TrimEnd('/').Length..] : path;
        string result = newRoot + relative;
        return (newRoot, result.Length == 0 ? "/" : result);
    }

    private static cgroup_dir_entry? FindDir(cg_controller_entry controller, string path)
    {
        var dirs = controller.Dirs;
        cgroup_dir_entry? found = null;
        foreach (var name in path.Split('/', StringSplitOptions.RemoveEmptyEntries))
        {
            found = dirs.FirstOrDefault(d => d.DirName == name);
            if (found is null)
                return null;
            dirs = found.Children;
        }
        return found;
    }

    /// <summary>A new v1 cpuset dir has no CPUs and no memory nodes and takes no task: its parent's, until its own are set.</summary>
    private static void InheritCpuset(string dir)
    {
        foreach (var file in new[] { "cpuset.cpus", "cpuset.mems" })
        {
            string own = Path.Combine(dir, file), parent = Path.Combine(Path.GetDirectoryName(dir)!, file);
            if (File.Exists(own) && File.ReadAllText(own).Trim().Length == 0 && File.Exists(parent))
                File.WriteAllText(own, File.ReadAllText(parent).Trim());
        }
    }

    /// <summary>The dir's dumped properties, in the image's order; one refused by the kernel (a memory limit below the
    /// memsw one…) is tried again after the others.</summary>
    private static void SetProperties(RestoreContext ctx, string dir, cgroup_dir_entry image)
    {
        var again = new List<cgroup_prop_entry>();
        foreach (var p in image.Properties)
            if (!TrySet(ctx, dir, p, out _))
                again.Add(p);
        foreach (var p in again)
            if (!TrySet(ctx, dir, p, out string? error))
                throw new CrispException($"cgroup {dir}: setting {p.Name} to '{p.Value}': {error}");
    }

    private static bool TrySet(RestoreContext ctx, string dir, cgroup_prop_entry p, out string? error)
    {
        error = null;
        string file = Path.Combine(dir, p.Name);
        if (!File.Exists(file))
        {
            ctx.Log.Warn($"cgroup {dir}: no {p.Name} here (controller not enabled?): left as it is");
            return true;
        }
        try
        {
            if (File.ReadAllText(file).Trim() == p.Value)
                return true;
            File.WriteAllText(file, p.Value);
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            error = e.Message;
            return false;
        }
    }

    /// <summary>Restore-wide: where each set's tasks go and what this restore made.</summary>
    public sealed class State
    {
        /// <summary>Set id → the dirs (one per hierarchy) its tasks join.</summary>
        public Dictionary<uint, List<string>> Targets { get; } = [];
        /// <summary>Dirs the root's cgroup namespace is rooted at (cgns_prefix of the root's set).</summary>
        public List<string> NamespaceRoots { get; } = [];
        /// <summary>Dirs this restore made, parents first.</summary>
        public List<string> Created { get; } = [];
    }
}
