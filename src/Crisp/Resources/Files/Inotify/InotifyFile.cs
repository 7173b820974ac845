using System.Globalization;
using Crisp.Dump;
using Crisp.Images.Proto;
using Crisp.Linux;
using Crisp.Linux.Proc;
using Crisp.Restore;

namespace Crisp.Resources.Files.Inotify;

/// <summary>inotify instances (anon_inode:inotify) — CRIU's INOTIFY kind: each watch from fdinfo
/// ("inotify wd:… ino:… sdev:… mask:… f_handle:…"). The watched inode is found from its file handle
/// (open_by_handle_at through the task's mount of that device) and its path kept in fh_entry.path.
/// Restore re-adds the watches in wd order; the kernel hands out wds cyclically upward, so a gap
/// (a watch removed before the dump) is skipped by adding and removing a placeholder until the
/// next wd is the wanted one, as CRIU does. The IN_IGNORED events that makes are read off before
/// the task gets the fd. Events queued but unread at dump time are not kept (nor are they by CRIU).</summary>
public sealed class InotifyFile : IFileKind
{
    public fd_types Type => fd_types.Inotify;

    public bool Claims(OpenFd fd) => AnonInode.Is(fd, "inotify");

    public file_entry Dump(DumpContext ctx, uint id, OpenFd fd)
    {
        var entry = new inotify_file_entry { Id = id, Flags = (uint)fd.Flags, Fown = Fown.Of(fd) };
        // "inotify wd:3 ino:… mask:…": the word before the first pair has no colon of its own.
        foreach (string line in fd.Info.Lines.Where(l => l.StartsWith("inotify ", StringComparison.Ordinal)).Select(l => l["inotify ".Length..]))
        {
            var p = FdInfo.ParsePairs(line).ToDictionary(x => x.Key, x => x.Value);
            string Get(string key) => p.TryGetValue(key, out var v) ? v
                : throw new CrispException($"task {fd.Pid} fd {fd.Fd}: inotify line '{line.Trim()}' has no {key}");
            uint sdev = (uint)AnonInode.Hex(Get("sdev"));
            ulong ino = AnonInode.Hex(Get("ino"));
            var fh = MarkedInodes.Handle(fd, "inotify watch", sdev, ino, (int)AnonInode.Hex(Get("fhandle-bytes")),
                (int)AnonInode.Hex(Get("fhandle-type")), Get("f_handle"));
            entry.Wd.Add(new inotify_wd_entry
            {
                Id = id,
                IIno = ino,
                Mask = (uint)AnonInode.Hex(Get("mask")),
                IgnoredMask = (uint)AnonInode.Hex(Get("ignored_mask")),
                SDev = sdev,
                Wd = (uint)AnonInode.Hex(Get("wd")),
                FHandle = fh,
            });
        }
        return new file_entry { Type = Type, Id = id, Ify = entry };
    }

    public UnixFd Open(RestoreContext ctx, file_entry entry)
    {
        var e = entry.Ify ?? throw new CrispException($"files.img: INOTIFY entry {entry.Id} has no inotify part");
        return NewDescription.Finish(ctx, EventObjects.Inotify(FileIo.O_NONBLOCK), e.Flags, e.Fown, fd =>
        {
            foreach (var w in e.Wd.OrderBy(w => w.Wd))
                AddWatch(fd, w);
            DrainEvents(fd);
        });
    }

    private static void AddWatch(int fd, inotify_wd_entry w)
    {
        string path;
        using (MarkedInodes.Open(w.FHandle, w.IIno, $"inotify watch {w.Wd}"))
            path = w.FHandle.Path;
        // Placeholders fill the gaps below the wanted wd: their wds are never handed out again
        // until the id space wraps.
        for (int tries = 0; ; tries++)
        {
            int wd = EventObjects.InotifyAddWatch(fd, path, w.Mask);
            if (wd == (int)w.Wd)
                return;
            if (wd > (int)w.Wd || tries > 1_000_000)
                throw new CrispException($"inotify watch {w.Wd} ({path}): the kernel gave wd {wd}");
            EventObjects.InotifyRmWatch(fd, wd);
        }
    }

    private static void DrainEvents(int fd)
    {
        var buf = new byte[4096];
        while (true)
        {
            try
            {
                if (FileIo.Read(fd, buf) <= 0)
                    return;
            }
            catch (SyscallException e) when (e.Errno == Errnos.EAGAIN)
            {
                return;
            }
        }
    }
}
