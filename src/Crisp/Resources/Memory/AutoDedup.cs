using Crisp.Images;
using Crisp.Images.Manifest;
using Crisp.Linux;

namespace Crisp.Resources.Memory;

/// <summary>--auto-dedup (CRIU's): once a dump or pre-dump of a chain is complete, the pages it stored itself
/// supersede what its parent images hold at the same addresses of the same task, which no restore of this dump
/// reads. Those are punched out of the parents' pages files (FALLOC_FL_PUNCH_HOLE: the file keeps its size and
/// every other page its offset), up the chain as CRIU's dedup_one_iovec goes, and each parent's manifest is
/// written again for what it now holds. Done only after the dump succeeded: a failed one leaves its parents as
/// they were. A parent on its own can then no longer be restored (as with CRIU).</summary>
public static class AutoDedup
{
    /// <summary>Refused before anything is dumped: a signed parent (punching would break its signature) and
    /// encrypted or remote pages (no page-sized holes in sealed chunks; the pages are not here).</summary>
    public static void Check(Dump.DumpOptions options, ImageDirectory parent)
    {
        if (options.EncryptKey is not null)
            throw new CrispException("--auto-dedup does not go with --encrypt-key: encrypted pages are sealed in chunks that a page-sized hole would break");
        if (options.PageServer is not null)
            throw new CrispException("--auto-dedup punches pages out of local parent images: it does not go with --page-server");
        if (parent.Exists(Security.CheckpointSignature.FileName))
            throw new CrispException($"--auto-dedup: the parent checkpoint {parent.Path} is signed; punching its pages would break its signature");
    }

    /// <summary>Dedups the parents of <paramref name="dir"/>; returns the bytes punched.</summary>
    public static long Run(ImageDirectory dir, Log log)
    {
        string parent = Path.Combine(dir.Path, MemoryChain.ParentLink);
        long punched = 0;
        foreach (var name in dir.FileNames().Order(StringComparer.Ordinal))
        {
            if (ImageKind.FromFileName(name) is not { Kind: var kind } map || kind != ImageKind.Pagemap)
                continue;
            List<(ulong Start, ulong End)> stored;
            using (var own = PagemapReader.Open(dir, map, throughParent: false))
                stored = own.Runs.Where(r => r.IsPresent).Select(r => (r.Vaddr, r.End)).ToList();
            punched += Punch(parent, map, stored, dir.Key, log);
        }
        log.Info($"auto-dedup: {punched >> 10} KiB punched out of the parent images");
        return punched;
    }

    /// <summary>Punches <paramref name="ranges"/> out of the pages the parent at <paramref name="parentPath"/>
    /// stores for <paramref name="map"/>, then goes on to its parent with the same ranges.</summary>
    private static long Punch(string parentPath, ImageFile map, List<(ulong Start, ulong End)> ranges, Security.Encryption.ImageKey? key, Log log)
    {
        if (ranges.Count == 0 || !Directory.Exists(parentPath))
            return 0;
        using var dir = ImageDirectory.Open(parentPath, key);
        if (!dir.Exists(map))
            return 0;
        long punched = 0;
        using (var theirs = PagemapReader.Open(dir, map, throughParent: false))
        {
            var pages = ImageFile.Pages(theirs.PagesId);
            if (dir.Exists(pages))
            {
                using var fd = FileIo.Open(dir.PathOf(pages), FileIo.O_RDWR);
                foreach (var (start, end) in ranges)
                    foreach (var (_, length, offset, _) in theirs.Resolve(start, end))
                    {
                        FileIo.PunchHole(fd.Fd, offset, (long)length);
                        punched += (long)length;
                    }
            }
        }
        if (punched > 0 && ImageManifest.Exists(dir))
            ImageManifest.Update(dir);
        log.Debug($"auto-dedup: {punched >> 10} KiB of {map.FileName} punched in {parentPath}");
        return punched + Punch(Path.Combine(parentPath, MemoryChain.ParentLink), map, ranges, key, log);
    }
}
