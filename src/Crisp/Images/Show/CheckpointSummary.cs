using System.Globalization;
using System.Text;
using Crisp.Images.Proto;

namespace Crisp.Images.Show;

/// <summary>
/// A short human summary of a checkpoint directory for `crisp show DIR`: tasks, their memory and
/// files, and the images' total size. Every image goes through <see cref="ImageReader"/>, so a
/// damaged one gives an <see cref="ImageFormatException"/> naming it.
/// </summary>
public static class CheckpointSummary
{
    private const int PageSize = PagemapWriter.PageSize;

    /// <param name="verify">Check the images against crisp-manifest.sha256 first when there is one; a
    /// directory without one (CRIU's) is shown and said to be unverified.</param>
    /// <param name="key">--encrypt-key, for an encrypted checkpoint (without it one says so in one line).</param>
    public static string Render(string path, bool verify = true, Security.Encryption.ImageKey? key = null)
    {
        if (!Directory.Exists(path))
            throw new CrispException($"{path}: no such directory");
        using var dir = ImageDirectory.Open(path, key);
        if (!dir.Exists(ImageFile.Inventory))
            throw new CrispException($"{path}: not a checkpoint directory (no inventory.img)");
        string integrity = !verify ? "not verified (--skip-image-verify)"
            : ImageManifest.Exists(dir) ? $"{ImageManifest.Verify(dir)} files match {Path.GetFileName(ImageManifest.PathIn(dir))} ({ImageManifest.Algorithms(dir)})"
            : $"not verified (no {ImageManifest.FileName}: not written by crisp)";

        var inventory = ReadOne<inventory_entry>(dir, ImageFile.Inventory);
        var pstree = dir.ReadAll<pstree_entry>(ImageFile.Pstree);
        var files = dir.ReadAll<file_entry>(ImageFile.Files).GroupBy(f => f.Id).ToDictionary(g => g.Key, g => g.First());
        var regFiles = dir.ReadAll<reg_file_entry>(ImageFile.RegFiles).GroupBy(f => f.Id).ToDictionary(g => g.Key, g => g.First());
        var listing = dir.List();
        long totalBytes = listing.Sum(f => new FileInfo(Path.Combine(dir.Path, f.FileName)).Length);

        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"checkpoint {dir.Path}\n");
        sb.Append(CultureInfo.InvariantCulture, $"  images: {listing.Count} files, {Size(totalBytes)}; image version {inventory.ImgVersion}\n");
        sb.Append(CultureInfo.InvariantCulture, $"  integrity: {integrity}\n");
        sb.Append(CultureInfo.InvariantCulture, $"  signature: {Security.CheckpointSignature.Describe(dir)}\n");
        sb.Append(CultureInfo.InvariantCulture, $"  encryption: {Security.Encryption.EncryptedImages.Describe(dir)}\n");
        sb.Append(CultureInfo.InvariantCulture, $"tasks: {pstree.Count}\n");
        var shownFiles = new HashSet<uint>();
        foreach (var t in pstree)
        {
            var core = dir.Exists(ImageFile.Core(t.Pid)) ? ReadOne<core_entry>(dir, ImageFile.Core(t.Pid)) : null;
            var ids = core?.Ids ?? (dir.Exists(ImageFile.Ids(t.Pid)) ? ReadOne<task_kobj_ids_entry>(dir, ImageFile.Ids(t.Pid)) : null);
            string comm = core?.Tc?.Comm ?? core?.ThreadCore?.Comm ?? "?";
            string state = core?.Tc is { } tc ? TaskState(tc.TaskState) : "?";
            string seccomp = core is null ? "?" : SeccompMode(core);
            int threads = Math.Max(t.Threads.Count, 1);
            sb.Append(CultureInfo.InvariantCulture,
                $"  pid {t.Pid} ppid {t.Ppid} pgid {t.Pgid} sid {t.Sid} comm {Quote(comm)} state {state} threads {threads} seccomp {seccomp}\n");

            var mmFile = ImageFile.Mm(t.Pid);
            if (dir.Exists(mmFile))
            {
                var mm = ReadOne<mm_entry>(dir, mmFile);
                ulong vmaBytes = mm.Vmas.Aggregate(0UL, (s, v) => s + (v.End >= v.Start ? v.End - v.Start : 0));
                sb.Append(CultureInfo.InvariantCulture, $"    memory: {mm.Vmas.Count} vmas, {Size((long)Math.Min(vmaBytes, long.MaxValue))} mapped");
            }
            else
            {
                sb.Append("    memory: no mm image");
            }
            var mapFile = ImageFile.Pagemap(t.Pid);
            if (dir.Exists(mapFile))
            {
                using var map = dir.OpenPagemap(mapFile);
                sb.Append(CultureInfo.InvariantCulture,
                    $", {map.PresentPages} pages stored ({Size(map.PresentPages * PageSize)}) in {map.Runs.Count} runs, pages-{map.PagesId}.img\n");
            }
            else
            {
                sb.Append(", no pagemap\n");
            }

            if (ids is null)
                continue;
            var fdFile = ImageFile.Fdinfo(ids.FilesId);
            if (!dir.Exists(fdFile))
                continue;
            if (!shownFiles.Add(ids.FilesId))
            {
                sb.Append(CultureInfo.InvariantCulture, $"    files: shared fd table {ids.FilesId} (shown above)\n");
                continue;
            }
            var fds = dir.ReadAll<fdinfo_entry>(fdFile);
            sb.Append(CultureInfo.InvariantCulture, $"    files: {fds.Count} fds (fdinfo-{ids.FilesId}.img)\n");
            foreach (var fd in fds.OrderBy(f => f.Fd))
                sb.Append(CultureInfo.InvariantCulture, $"      fd {fd.Fd}: {Describe(fd, files, regFiles)}\n");
        }

        var shmem = listing.Where(f => f.File is { } img && img.Kind == ImageKind.ShmemPagemap).ToList();
        if (shmem.Count > 0)
        {
            sb.Append(CultureInfo.InvariantCulture, $"shared memory: {shmem.Count} objects\n");
            foreach (var (name, img) in shmem)
            {
                using var map = dir.OpenPagemap(img!.Value);
                sb.Append(CultureInfo.InvariantCulture,
                    $"  {name}: {map.PresentPages} pages stored ({Size(map.PresentPages * PageSize)}), pages-{map.PagesId}.img\n");
            }
        }
        sb.Append(CheckpointNeeds.Read(dir).Render());
        return sb.ToString();
    }

    private static T ReadOne<T>(ImageDirectory dir, ImageFile file) where T : class, Google.Protobuf.IMessage<T>, new()
    {
        using var reader = dir.OpenReader(file);
        return reader.Read<T>() ?? throw new ImageFormatException(dir.PathOf(file), reader.Position, $"no {new T().Descriptor.Name} entry");
    }

    private static string Describe(fdinfo_entry fd, Dictionary<uint, file_entry> files, Dictionary<uint, reg_file_entry> regFiles)
    {
        string kind = fd.Type.ToString().ToUpperInvariant();
        files.TryGetValue(fd.Id, out var f);
        string? what = fd.Type switch
        {
            fd_types.Reg => (f?.Reg ?? (regFiles.TryGetValue(fd.Id, out var r) ? r : null))?.Name,
            fd_types.Pipe => f?.Pipe is { } p ? $"pipe:[{p.PipeId}]" : null,
            fd_types.Fifo => f?.Fifo is { } fi ? (regFiles.TryGetValue(fi.RegfId, out var fr) ? fr.Name : $"fifo:[{fi.PipeId}]") : null,
            fd_types.Tty => f?.Tty is { } tty ? (tty.HasRegfId && regFiles.TryGetValue(tty.RegfId, out var tr) ? tr.Name : $"tty (tty-info {tty.TtyInfoId})") : null,
            fd_types.Memfd => f?.Memfd is { } m ? $"memfd (inode {m.InodeId})" : null,
            fd_types.Unixsk => f?.Usk is { } u ? $"socket:[{u.Ino}]" : null,
            _ => null,
        };
        if (f is null && !(fd.Type == fd_types.Reg && regFiles.ContainsKey(fd.Id)))
            what = $"file id {fd.Id} (not in files.img)";
        return what is null ? $"{kind} (id {fd.Id})" : $"{kind} {what}";
    }

    /// <summary>compel's task states (core.tc.task_state).</summary>
    private static string TaskState(uint state) => state switch
    {
        1 => "alive",
        2 => "dead",
        3 => "stopped",
        6 => "zombie",
        _ => $"unknown({state})",
    };

    private static string SeccompMode(core_entry core)
    {
        if (core.ThreadCore is { HasSeccompMode: true } tc)
            return Mode(tc.SeccompMode, tc.HasSeccompFilter ? tc.SeccompFilter : null);
        if (core.Tc is { HasOldSeccompMode: true } old)
            return Mode(old.OldSeccompMode, old.HasOldSeccompFilter ? old.OldSeccompFilter : null);
        return "disabled";

        static string Mode(seccomp_mode m, uint? filter) => m switch
        {
            seccomp_mode.Disabled => "disabled",
            seccomp_mode.Strict => "strict",
            seccomp_mode.Filter => filter is { } f ? $"filter (chain {f})" : "filter",
            _ => $"unknown({(int)m})",
        };
    }

    private static string Quote(string s)
    {
        var sb = new StringBuilder("\"");
        foreach (char c in s)
        {
            if (c is '"' or '\\')
                sb.Append('\\').Append(c);
            else if (char.IsControl(c))
                sb.Append(CultureInfo.InvariantCulture, $"\\x{(int)c:x2}");
            else
                sb.Append(c);
        }
        return sb.Append('"').ToString();
    }

    private static string Size(long bytes) => bytes switch
    {
        < 1024 => $"{bytes} B",
        < 1024 * 1024 => string.Create(CultureInfo.InvariantCulture, $"{bytes / 1024.0:0.#} KiB"),
        < 1024L * 1024 * 1024 => string.Create(CultureInfo.InvariantCulture, $"{bytes / (1024.0 * 1024):0.#} MiB"),
        _ => string.Create(CultureInfo.InvariantCulture, $"{bytes / (1024.0 * 1024 * 1024):0.##} GiB"),
    };
}
