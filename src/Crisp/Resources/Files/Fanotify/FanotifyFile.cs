using Crisp.Dump;
using Crisp.Images.Proto;
using Crisp.Linux;
using Crisp.Linux.Proc;
using Crisp.Restore;

namespace Crisp.Resources.Files.Fanotify;

/// <summary>fanotify groups (anon_inode:[fanotify]) — CRIU's FANOTIFY kind. fdinfo gives the group's
/// fanotify_init flags and event-fd flags ("fanotify flags:… event-flags:…") and one line per mark:
/// inode marks ("fanotify ino:… sdev:… mflags:… mask:… ignored_mask:… f_handle:…", the inode found
/// from its file handle as for inotify) and mount marks ("fanotify mnt_id:…", kept as the mount's
/// path). Filesystem marks ("fanotify sdev:…") have no type in CRIU's image and are refused.
/// Restore: fanotify_init, then each mark's mask and ignored mask re-added through an O_PATH fd on
/// the checked inode or mount. Events queued but unread at dump are lost (as in CRIU).</summary>
public sealed class FanotifyFile : IFileKind
{
    private const uint FAN_MARK_ADD = 0x1, FAN_MARK_MOUNT = 0x10, FAN_MARK_IGNORED_MASK = 0x20,
        FAN_MARK_IGNORED_SURV_MODIFY = 0x40, FAN_MARK_EVICTABLE = 0x200, FAN_MARK_IGNORE = 0x400;
    private const long FIONREAD = 0x541b;

    public fd_types Type => fd_types.Fanotify;

    public bool Claims(OpenFd fd) => AnonInode.Is(fd, "fanotify");

    public file_entry Dump(DumpContext ctx, uint id, OpenFd fd)
    {
        var entry = new fanotify_file_entry { Id = id, Flags = (uint)fd.Flags, Fown = Fown.Of(fd) };
        bool header = false;
        // The task's mount table, read once and only if a mount mark needs it.
        var mounts = new Lazy<List<MountInfoEntry>>(() => MountInfo.Read(fd.Pid));
        foreach (string line in fd.Info.Lines.Where(l => l.StartsWith("fanotify ", StringComparison.Ordinal)).Select(l => l["fanotify ".Length..]))
        {
            var p = FdInfo.ParsePairs(line).ToDictionary(x => x.Key, x => x.Value);
            string Get(string key) => p.TryGetValue(key, out var v) ? v
                : throw new CrispException($"task {fd.Pid} fd {fd.Fd}: fanotify line '{line.Trim()}' has no {key}");
            uint Hex(string key) => (uint)AnonInode.Hex(Get(key));
            if (p.ContainsKey("flags"))
            {
                entry.Faflags = Hex("flags");
                entry.Evflags = Hex("event-flags");
                header = true;
                continue;
            }
            var mark = new fanotify_mark_entry { Id = id, Mflags = Hex("mflags"), Mask = Hex("mask"), IgnoredMask = Hex("ignored_mask") };
            if (p.ContainsKey("ino"))
            {
                mark.Type = mark_type.Inode;
                mark.SDev = Hex("sdev");
                ulong ino = AnonInode.Hex(Get("ino"));
                mark.Ie = new fanotify_inode_mark_entry
                {
                    IIno = ino,
                    FHandle = MarkedInodes.Handle(fd, "fanotify mark", mark.SDev, ino, (int)Hex("fhandle-bytes"), (int)Hex("fhandle-type"), Get("f_handle")),
                };
            }
            else if (p.ContainsKey("mnt_id"))
            {
                uint mntId = Hex("mnt_id");
                var m = mounts.Value.FirstOrDefault(m => m.MountId == mntId)
                    ?? throw new CrispException($"task {fd.Pid} fd {fd.Fd}: fanotify mount mark on mount {mntId}, which is not in the task's mount namespace");
                mark.Type = mark_type.Mount;
                mark.SDev = m.Major << 20 | m.Minor;
                mark.Me = new fanotify_mount_mark_entry { MntId = mntId, Path = m.MountPoint };
            }
            else
            {
                string dev = p.TryGetValue("sdev", out var s) ? $" on device {AnonInode.Hex(s) >> 20}:{AnonInode.Hex(s) & 0xfffff}" : "";
                throw new CrispException($"task {fd.Pid} fd {fd.Fd}: fanotify filesystem mark (FAN_MARK_FILESYSTEM){dev} is not supported yet");
            }
            entry.Mark.Add(mark);
        }
        if (!header)
            throw new CrispException($"task {fd.Pid} fd {fd.Fd}: fdinfo has no 'fanotify flags' line");
        int queued = SocketCalls.Ioctl(fd.Copy.Fd, FIONREAD);
        if (queued > 0)
            ctx.Log.Warn($"task {fd.Pid} fd {fd.Fd}: {queued} bytes of unread fanotify events are not kept");
        return new file_entry { Type = Type, Id = id, Ffy = entry };
    }

    public UnixFd Open(RestoreContext ctx, file_entry entry)
    {
        var e = entry.Ffy ?? throw new CrispException($"files.img: FANOTIFY entry {entry.Id} has no fanotify part");
        return NewDescription.Finish(ctx, EventObjects.Fanotify(e.Faflags, e.Evflags), e.Flags, e.Fown, fd =>
        {
            // fdinfo lists marks newest first: adding them in reverse keeps that order.
            foreach (var m in e.Mark.Reverse())
                AddMark(fd, m);
        });
    }

    private static void AddMark(int fan, fanotify_mark_entry m)
    {
        using var target = m.Type switch
        {
            mark_type.Inode when m.Ie is { } ie => MarkedInodes.Open(ie.FHandle, ie.IIno, "fanotify mark"),
            mark_type.Mount when m.Me is { HasPath: true } me => MountRoot(me.Path),
            _ => throw new CrispException($"files.img: fanotify mark of type {m.Type} without its inode or mount part"),
        };
        // The mark goes on what the O_PATH fd holds (the inode or mount checked above), not on
        // whatever the path leads to by now.
        string path = $"/proc/self/fd/{target.Fd}";
        uint where = (m.Type == mark_type.Mount ? FAN_MARK_MOUNT : 0) | (m.Mflags & FAN_MARK_EVICTABLE);
        if (m.Mask != 0)
            EventObjects.FanotifyMark(fan, FAN_MARK_ADD | where, m.Mask, path);
        // mflags tell which API set the ignored mask: FAN_MARK_IGNORE (its own FAN_ONDIR/EVENT_ON_CHILD
        // bits) or the older FAN_MARK_IGNORED_MASK; either may survive modification. Those flags only
        // take effect together with an ignored mask, so a mark without one has nothing more to add.
        if (m.IgnoredMask != 0)
        {
            uint ignore = (m.Mflags & FAN_MARK_IGNORE) != 0 ? FAN_MARK_IGNORE : FAN_MARK_IGNORED_MASK;
            EventObjects.FanotifyMark(fan, FAN_MARK_ADD | where | ignore | (m.Mflags & FAN_MARK_IGNORED_SURV_MODIFY), m.IgnoredMask, path);
        }
    }

    /// <summary>An O_PATH fd on the mount at <paramref name="mountPoint"/>, refused unless a mount is there.</summary>
    private static UnixFd MountRoot(string mountPoint)
    {
        string what = $"fanotify mount mark on {mountPoint}";
        UnixFd f;
        try
        {
            f = FileIo.Open(mountPoint, FileIo.O_PATH);
        }
        catch (SyscallException ex)
        {
            throw new CrispException($"{what}: {ex.Message}");
        }
        int mntId = FdInfo.Read(Environment.ProcessId, f.Fd).MntId;
        if (MountInfo.Read(Environment.ProcessId).Any(m => m.MountId == mntId && m.MountPoint == mountPoint))
            return f;
        f.Dispose();
        throw new CrispException($"{what}: no mount is there now");
    }
}
