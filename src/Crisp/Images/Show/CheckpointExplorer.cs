using System.Globalization;
using System.Text;
using Crisp.Images.Proto;

namespace Crisp.Images.Show;

/// <summary>
/// `crit x DIR ps|fds|mems|rss`: the process tree, each task's fds, its mappings, and which mappings its stored
/// pages fall in, in crit's columns. Where crisp keeps a fact elsewhere than crit looks (ids in core_entry rather
/// than ids-PID.img) it is taken from there.
/// </summary>
public sealed class CheckpointExplorer
{
    public static readonly IReadOnlyList<string> Views = ["ps", "fds", "mems", "rss"];

    private readonly ImageDirectory _dir;
    private readonly List<pstree_entry> _tree;
    private readonly Dictionary<uint, file_entry> _files;
    private readonly Dictionary<uint, reg_file_entry> _regFiles;
    private readonly Dictionary<uint, pipe_entry> _pipes;
    private readonly Dictionary<uint, unix_sk_entry> _unix;

    private CheckpointExplorer(ImageDirectory dir)
    {
        _dir = dir;
        _tree = dir.ReadAll<pstree_entry>(ImageFile.Pstree);
        if (!dir.Exists(ImageFile.Pstree))
            throw new CrispException($"{dir.Path}: not a checkpoint directory (no pstree.img)");
        _files = ById(dir.ReadAll<file_entry>(ImageFile.Files), f => f.Id);
        _regFiles = ById(dir.ReadAll<reg_file_entry>(ImageFile.RegFiles), f => f.Id);
        _pipes = ById(dir.ReadAll<pipe_entry>(ImageFile.Pipes), f => f.Id);
        _unix = ById(dir.ReadAll<unix_sk_entry>(new ImageFile(ImageKind.UnixSk, null)), f => f.Id);
    }

    public static string Render(string path, string view, Security.Encryption.ImageKey? key = null)
    {
        if (!Directory.Exists(path))
            throw new CrispException($"{path}: no such directory");
        var x = new CheckpointExplorer(ImageDirectory.Open(path, key));
        return view switch
        {
            "ps" => x.Ps(),
            "fds" => x.Fds(),
            "mems" => x.Mems(),
            "rss" => x.Rss(),
            _ => throw new CrispException($"unknown view '{view}': one of {string.Join(", ", Views)}"),
        };
    }

    private string Ps()
    {
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"{"PID",7}{"PGID",7}{"SID",7}   COMM\n");
        var pids = _tree.Select(t => t.Pid).ToHashSet();
        foreach (var root in _tree.Where(t => t.Ppid == 0 || !pids.Contains(t.Ppid)))
            PsTask(sb, root, 0);
        return sb.ToString();
    }

    private void PsTask(StringBuilder sb, pstree_entry t, int depth)
    {
        string comm = Core(t.Pid).Tc?.Comm ?? "?";
        sb.Append(CultureInfo.InvariantCulture, $"{t.Pid,7}{t.Pgid,7}{t.Sid,7}   {new string(' ', 4 * depth)}{comm}\n");
        foreach (var kid in _tree.Where(k => k.Ppid == t.Pid && k.Pid != t.Pid))
            PsTask(sb, kid, depth + 1);
    }

    private string Fds()
    {
        var sb = new StringBuilder();
        foreach (var t in _tree)
        {
            sb.Append(CultureInfo.InvariantCulture, $"{t.Pid}\n");
            foreach (var (fd, file) in FilesOf(t.Pid))
                sb.Append(CultureInfo.InvariantCulture, $"\t{fd,7}: {file}\n");
        }
        return sb.ToString();
    }

    /// <summary>The checkpoint in <paramref name="path"/>, for callers that want its facts rather than crit's text.</summary>
    public static CheckpointExplorer Open(string path, Security.Encryption.ImageKey? key = null) => new(ImageDirectory.Open(path, key));

    public IReadOnlyList<pstree_entry> Tree => _tree;

    /// <summary>A task's fds in order, then its cwd and root, each with crit's name for the file; none for a zombie,
    /// which has no files, mm or ids of its own in the images (crit stops at it; a shell's finished child often is one).</summary>
    public List<(string Fd, string File)> FilesOf(uint pid)
    {
        if (IsDead(pid))
            return [];
        var ids = _dir.Exists(ImageFile.Ids(pid)) ? _dir.ReadOne<task_kobj_ids_entry>(ImageFile.Ids(pid))
            : Core(pid).Ids ?? throw new CrispException($"task {pid}: no ids (neither ids-{pid}.img nor core ids)");
        var list = _dir.ReadAll<fdinfo_entry>(ImageFile.Fdinfo(ids.FilesId))
            .Select(fd => (fd.Fd.ToString(CultureInfo.InvariantCulture), FileString(fd.Type, fd.Id))).ToList();
        var fs = _dir.ReadOne<fs_entry>(ImageFile.Fs(pid));
        list.Add(("cwd", FileString(fd_types.Reg, fs.CwdId)));
        list.Add(("root", FileString(fd_types.Reg, fs.RootId)));
        return list;
    }

    private string Mems()
    {
        var sb = new StringBuilder();
        var shared = new Dictionary<ulong, int>();
        int Vid(ulong id) => shared.TryGetValue(id, out int v) ? v : shared[id] = shared.Count + 1;
        foreach (var t in _tree)
        {
            sb.Append(CultureInfo.InvariantCulture, $"{t.Pid}\n");
            if (IsDead(t.Pid))
                continue;
            var mm = _dir.ReadOne<mm_entry>(ImageFile.Mm(t.Pid));
            sb.Append(CultureInfo.InvariantCulture, $"\t{"exe",-36}    {FileString(fd_types.Reg, mm.ExeFileId)}\n");
            foreach (var vma in mm.Vmas)
            {
                uint st = vma.Status;
                string fn;
                if ((st & (1 << 10)) != 0)
                    fn = $" ips[{Vid(vma.Shmid):x}]";
                else if ((st & (1 << 8)) != 0)
                    fn = $" shmem[{Vid(vma.Shmid):x}]";
                else if ((st & (1 << 11)) != 0)
                    fn = $" packet[{Vid(vma.Shmid):x}]";
                else if ((st & ((1 << 6) | (1 << 7))) != 0)
                {
                    fn = " " + FileString(fd_types.Reg, (uint)vma.Shmid);
                    if (vma.Pgoff != 0)
                        fn += $" + 0x{vma.Pgoff:x}";
                    if ((st & (1 << 7)) != 0)
                        fn += " (s)";
                }
                else if ((st & (1 << 1)) != 0)
                    fn = " [stack]";
                else if ((st & (1 << 2)) != 0)
                    fn = " [vsyscall]";
                else if ((st & (1 << 3)) != 0)
                    fn = " [vdso]";
                else if ((vma.Flags & 0x100) != 0)
                    fn = " [stack?]";
                else
                    fn = "";
                if ((st & 1) == 0)
                    fn += " *";
                string prot = ((vma.Prot & 1) != 0 ? "r" : "-") + ((vma.Prot & 2) != 0 ? "w" : "-") + ((vma.Prot & 4) != 0 ? "x" : "-");
                sb.Append(CultureInfo.InvariantCulture, $"\t{$"{vma.Start:x8}-{vma.End:x8}",-36}{prot}{fn}\n");
            }
        }
        return sb.ToString();
    }

    private string Rss()
    {
        var sb = new StringBuilder();
        foreach (var t in _tree)
        {
            sb.Append(CultureInfo.InvariantCulture, $"{t.Pid}\n");
            if (IsDead(t.Pid))
                continue;
            var vmas = _dir.ReadOne<mm_entry>(ImageFile.Mm(t.Pid)).Vmas;
            using var reader = _dir.OpenReader(ImageFile.Pagemap(t.Pid));
            reader.Read<pagemap_head>();
            int vmi = 0, pvmi = -1;
            while (reader.Read<pagemap_entry>() is { } pm)
            {
                ulong nrPages = pm.HasNrPages ? pm.NrPages : pm.CompatNrPages;
                string pstr = $"\t{pm.Vaddr:x} / {nrPages,-8}";
                while (vmi < vmas.Count && vmas[vmi].End <= pm.Vaddr)
                    vmi++;
                ulong pme = pm.Vaddr + (nrPages << 12);
                var vstr = new StringBuilder();
                while (vmi < vmas.Count && vmas[vmi].Start < pme)
                {
                    var vma = vmas[vmi];
                    if (vmi == pvmi)
                        vstr.Append(" ~");
                    else
                    {
                        vstr.Append(CultureInfo.InvariantCulture, $" {vma.Start:x8} / {(vma.End - vma.Start) >> 12,-8}");
                        if ((vma.Status & ((1 << 6) | (1 << 7))) != 0)
                            vstr.Append(' ').Append(FileString(fd_types.Reg, (uint)vma.Shmid));
                        pvmi = vmi;
                    }
                    vstr.Append('\n').Append('\t').Append(' ', 23);
                    vmi++;
                }
                vmi--;
                sb.Append(CultureInfo.InvariantCulture, $"{pstr,-24}{vstr}\n");
            }
        }
        return sb.ToString();
    }

    /// <summary>crit's name for a file: a path, pipe[ID], unix[INO (PEER) NAME], or TYPE.ID for other kinds.</summary>
    private string FileString(fd_types type, uint id)
    {
        bool inFiles = _files.TryGetValue(id, out var f);
        switch (type)
        {
            case fd_types.Reg:
                var reg = inFiles ? f!.Reg : _regFiles.GetValueOrDefault(id);
                return reg is { Name.Length: > 0 } ? reg.Name : "unknown path";
            case fd_types.Pipe:
                var pipe = inFiles ? f!.Pipe : _pipes.GetValueOrDefault(id);
                return pipe is null ? "pipe[?]" : $"pipe[{pipe.PipeId}]";
            case fd_types.Unixsk:
                var ux = inFiles ? f!.Usk : _unix.GetValueOrDefault(id);
                if (ux is null)
                    return "unix[?]";
                string name = CritFormat.QuotedPrintable(ux.Name.Span);
                return $"unix[{ux.Ino} ({ux.Peer}){(name.Length > 0 ? " " + name : "")}]";
            default:
                return $"{fdinfo_entry.Descriptor.FindFieldByName("type").EnumType.FindValueByNumber((int)type)?.Name ?? ((int)type).ToString(CultureInfo.InvariantCulture)}.{id}";
        }
    }

    // Read once per task: ps, the zombie check and the ids fallback all want it.
    private readonly Dictionary<uint, core_entry> _cores = [];
    private core_entry Core(uint pid) => _cores.TryGetValue(pid, out var core) ? core : _cores[pid] = _dir.ReadOne<core_entry>(ImageFile.Core(pid));

    private bool IsDead(uint pid) => Core(pid).Tc?.TaskState is Resources.Core.TaskStates.Dead or Resources.Core.TaskStates.Zombie;

    private static Dictionary<uint, T> ById<T>(IEnumerable<T> items, Func<T, uint> id)
    {
        var map = new Dictionary<uint, T>();
        foreach (var item in items)
            map.TryAdd(id(item), item);
        return map;
    }
}
