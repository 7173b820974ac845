using Crisp.Dump;
using Crisp.Images.Proto;
using Crisp.Linux;
using Crisp.Restore;

namespace Crisp.Resources.Files.Tty;

/// <summary>Terminals that are a device node and nothing more — the system console (/dev/console, char 5:1) and
/// the virtual terminals (/dev/ttyN, char 4:N, N 1–63) — CRIU's CONSOLE and VT kinds (tty.c's open_simple_tty).
/// One tty_info per kind with CRIU's fixed index (console 1002, VT 1004, so ids 2004 and 2008): termios, locked
/// termios, window size, exclusive mode, owner; each description a tty_file_entry whose regf_id names a REG entry
/// with the path. Restore opens the path again with the description's flags (never as a controlling terminal)
/// and puts the settings back.</summary>
public static class DeviceTty
{
    public const uint ConsoleIndex = 1002, VtIndex = 1004;
    private const uint TtyMajor = 4, FirstVtMinor = 1, LastVtMinor = 63, ConsoleMajor = 5, ConsoleMinor = 1;

    /// <summary>The kind of a console or VT device number, or null for any other.</summary>
    public static TtyType? KindOf(ulong rdev)
    {
        var (major, minor) = Terminals.Split(rdev);
        if (major == ConsoleMajor && minor == ConsoleMinor)
            return TtyType.Console;
        if (major == TtyMajor && minor >= FirstVtMinor && minor <= LastVtMinor)
            return TtyType.Vt;
        return null;
    }

    public static uint InfoIdOf(TtyType kind) => (kind == TtyType.Console ? ConsoleIndex : VtIndex) << 1;

    /// <summary>What CRIU's dump_tty_info keeps of a console or VT: no session (it is the task's terminal only for a
    /// shell job, which the controlling-terminal check handles), termios unless the line hung up.</summary>
    public static tty_info_entry Collect(DumpContext ctx, OpenFd fd, TtyType kind)
    {
        int lfd = fd.Copy.Fd;
        var (uid, gid) = Owner(lfd);
        var info = new tty_info_entry
        {
            Id = InfoIdOf(kind),
            Type = kind,
            Rdev = (uint)fd.Stat.Rdev,
            Dev = (uint)fd.Stat.Dev,
            Locked = false,
            PacketMode = false,
            Exclusive = (Terminals.TryGetInt(lfd, Terminals.TIOCGEXCL) ?? 0) != 0,
            Sid = 0,
            Pgrp = 0,
            Uid = uid,
            Gid = gid,
        };
        TtyDump.ReadSettings(ctx, fd, lfd, info);
        return info;
    }

    /// <summary>CRIU's open_simple_tty: the path again with the description's flags and O_NOCTTY, checked to be the
    /// same kind of device, then its owner and settings as the images have them. Every VT shares CRIU's one VT
    /// tty_info, so its settings go only to the VT they were read from.</summary>
    public static UnixFd Open(RestoreContext ctx, tty_file_entry tfe, tty_info_entry info, Func<uint, reg_file_entry?> regs, Action<int> setParams)
    {
        string what = info.Type == TtyType.Console ? "console" : "virtual terminal";
        if (!tfe.HasRegfId || regs(tfe.RegfId) is not { } reg)
            throw new CrispException($"files.img: {what} tty {tfe.Id} has no path entry (regf_id)");
        int flags = ((int)tfe.Flags & ~(FileIo.O_CREAT | FileIo.O_TRUNC | FileIo.O_EXCL | FileIo.O_CLOEXEC)) | FileIo.O_NOCTTY | FileIo.O_CLOEXEC;
        UnixFd fd;
        try
        {
            fd = FileIo.Open(Mounts.MountNamespace.PathInTree(ctx, reg.Name), flags);
        }
        catch (SyscallException e)
        {
            throw new CrispException($"{what} {reg.Name}: cannot open: {e.Message}");
        }
        try
        {
            var st = FdOps.Stat(fd.Fd);
            if (st.Type != FileStat.S_IFCHR || KindOf(st.Rdev) != info.Type)
                throw new CrispException($"{what} {reg.Name}: is no longer a {what} (device {Terminals.Split(st.Rdev).Major}:{Terminals.Split(st.Rdev).Minor})");
            if (info.HasUid && info.HasGid)
            {
                var (uid, gid) = Owner(fd.Fd);
                if (uid != info.Uid || gid != info.Gid)
                    RawSyscall.Call($"fchown({reg.Name})", Sysno.fchown, fd.Fd, info.Uid, info.Gid);
            }
            // Exclusive mode is recorded but, as with CRIU, not set again: it would outlive the tree on a shared device.
            if ((uint)st.Rdev == info.Rdev)
                setParams(fd.Fd);
            else
                ctx.Log.Warn($"{what} {reg.Name}: the images keep the settings of another one (device {info.Rdev:x}); left as they are");
            try { Fown.Restore(ctx, fd.Fd, tfe.Fown); }
            catch (SyscallException e) { ctx.Log.Warn($"tty {tfe.Id}: owner not restored: {e.Message}"); }
            ctx.Log.Debug($"{what} {reg.Name}: opened again (flags {flags:x})");
            return fd;
        }
        catch (Exception e)
        {
            fd.Dispose();
            if (e is SyscallException)
                throw new CrispException($"{what} {reg.Name}: {e.Message}");
            throw;
        }
    }

    private static unsafe (uint Uid, uint Gid) Owner(int fd)
    {
        byte* st = stackalloc byte[144];
        RawSyscall.Call("fstat", Sysno.fstat, fd, (long)st);
        return (*(uint*)(st + 28), *(uint*)(st + 32));
    }
}
