using Crisp.Images;
using Crisp.Images.Proto;
using Crisp.Linux;
using Crisp.Restore;

namespace Crisp.Resources.Files.Tty;

/// <summary>Restore-wide: the ptys of the images. Each pair is made whole the first time any of its
/// descriptions is asked for: /dev/ptmx is opened until it hands out the same index, unlocked, given its
/// modes, every slave description opened from it (TIOCGPTPEER), both ends' termios and window size set,
/// queued bytes put back, and only then locked again if it was. A slave without its master is the
/// caller's terminal of a shell job: crisp's own stdin stands in for it.</summary>
public sealed class PtySet : IDisposable
{
    private const int MaxPtmxTries = 64;
    private Dictionary<uint, tty_info_entry>? _infos;
    private List<tty_file_entry> _files = [];
    private Dictionary<uint, List<byte[]>> _data = [];
    private readonly Dictionary<uint, UnixFd> _ready = [];
    private readonly HashSet<uint> _paramsSet = [];

    /// <summary>Set once a description of the caller's terminal was handed out (--shell-job).</summary>
    public bool InheritedTerminal { get; private set; }

    public IReadOnlyDictionary<uint, tty_info_entry> Infos(RestoreContext ctx)
    {
        Load(ctx);
        return _infos!;
    }

    public IReadOnlyList<tty_file_entry> Files(RestoreContext ctx)
    {
        Load(ctx);
        return _files;
    }

    /// <summary>Is this /dev/tty (a tty_info of type CTTY), which only the task itself can open?</summary>
    public bool IsControllingTty(RestoreContext ctx, tty_file_entry tfe) =>
        Infos(ctx).TryGetValue(tfe.TtyInfoId, out var info) && info.Type == TtyType.Ctty;

    public UnixFd Open(RestoreContext ctx, tty_file_entry tfe)
    {
        Load(ctx);
        if (_ready.Remove(tfe.Id, out var made))
            return made;
        if (!_infos!.TryGetValue(tfe.TtyInfoId, out var info))
            throw new CrispException($"files.img: tty {tfe.Id} refers to tty-info {tfe.TtyInfoId:x}, which tty-info.img lacks");
        if (info.Type is TtyType.Console or TtyType.Vt)
            return DeviceTty.Open(ctx, tfe, info, id => ctx.Files.Fifos.Reg(ctx.Images, id), fd => SetParams(ctx, fd, info));
        if (info.Type != TtyType.Pty || info.Pty is null)
            throw new CrispException($"tty-info.img: terminal {info.Id:x} is a {info.Type}; crisp restores ptys, /dev/tty, the console and VTs");
        uint index = info.Pty.Index;
        if (_infos.ContainsKey((index << 1) | 1))
        {
            MakePair(ctx, index, Mounts.MountNamespace.PathInTree(ctx, "/dev/ptmx"));
            return _ready.Remove(tfe.Id, out made) ? made
                : throw new CrispException($"pty {index}: description {tfe.Id} was not made");
        }
        if (ctx.Options.OrphanPtsMaster)
        {
            MakeOrphan(ctx, index, info, Mounts.MountNamespace.PathInTree(ctx, "/dev/ptmx"));
            return _ready.Remove(tfe.Id, out made) ? made
                : throw new CrispException($"pty {index}: description {tfe.Id} was not made");
        }
        return OpenInherited(ctx, tfe, info);
    }

    /// <summary>Pty <paramref name="index"/> made early, from the devpts whose ptmx is <paramref name="ptmx"/>: a bind
    /// mount of its slave is about to be made. Its descriptions wait for the files stage as any other.</summary>
    public void MakeForMount(RestoreContext ctx, uint index, string ptmx)
    {
        Load(ctx);
        if (_infos!.ContainsKey((index << 1) | 1))
            MakePair(ctx, index, ptmx);
        else if (ctx.Options.OrphanPtsMaster && _infos.TryGetValue(index << 1, out var slave))
            MakeOrphan(ctx, index, slave, ptmx);
        else
            throw new CrispException($"a mount binds /dev/pts/{index}, which is no pty of the checkpoint" +
                (_infos.ContainsKey(index << 1) ? " crisp can make (its master was outside the tree: --orphan-pts-master)" : ""));
    }

    /// <summary>--orphan-pts-master (CRIU's pty_open_unpaired_slave): the tree's terminal had its master outside the
    /// tree (a container's console). A new pty of the same index is made in the tree's devpts, given the slave's
    /// settings, every slave description opened from it, and its master handed to the RPC caller by the
    /// "orphan-pts-master" notify (runc passes it on to the console socket); crisp keeps no copy.</summary>
    private void MakeOrphan(RestoreContext ctx, uint index, tty_info_entry slaveInfo, string ptmx)
    {
        var notifier = ctx.Options.Scripts?.Notifier
            ?? throw new CrispException($"/dev/pts/{index} had its master outside the tree: --orphan-pts-master hands a new master to an RPC caller (crisp swrk or service), and there is none");
        Keep(index, made =>
        {
            using var master = OpenPtmx(ptmx, (int)index);
            Terminals.SetInt(master.Fd, Terminals.TIOCSPTLCK, 0);
            foreach (var sf in _files.Where(f => f.TtyInfoId == slaveInfo.Id))
            {
                int access = (int)sf.Flags & FileIo.O_ACCMODE;
                var slave = new UnixFd((int)RawSyscall.Call($"ioctl(TIOCGPTPEER) on pty {index}", Sysno.ioctl, master.Fd,
                    Terminals.TIOCGPTPEER, access | FileIo.O_NOCTTY | FileIo.O_CLOEXEC));
                made.Add((sf.Id, slave));
                if (slaveInfo.Termios is not null && _paramsSet.Add(slaveInfo.Id))
                    SetParams(ctx, slave.Fd, slaveInfo);
                FdOps.SetStatusFlags(slave.Fd, (int)sf.Flags);
                TryOwner(ctx, slave.Fd, sf);
            }
            if (notifier.NotifyWithFd("orphan-pts-master", master.Fd) is { } why)
                throw new CrispException($"orphan-pts-master: {why}");
            ctx.Log.Debug($"pty {index}: new master handed to the caller, {made.Count} slave description(s)");
        });
    }

    /// <summary>Runs <paramref name="make"/>, which adds each description it opens to its list: all of them are
    /// kept for the files stage, or all closed again if it fails.</summary>
    private void Keep(uint index, Action<List<(uint Id, UnixFd Fd)>> make)
    {
        var made = new List<(uint Id, UnixFd Fd)>();
        try
        {
            make(made);
        }
        catch (Exception e)
        {
            foreach (var (_, fd) in made)
                fd.Dispose();
            if (e is SyscallException)
                throw new CrispException($"pty {index}: {e.Message}");
            throw;
        }
        foreach (var (id, fd) in made)
            _ready[id] = fd;
    }

    private UnixFd OpenInherited(RestoreContext ctx, tty_file_entry tfe, tty_info_entry info)
    {
        if (!ctx.Options.ShellJob)
            throw new CrispException($"files.img: /dev/pts/{info.Pty.Index} was the caller's terminal (its master was not dumped): restore with --shell-job");
        if (!IsTerminal(0))
            throw new CrispException("--shell-job: crisp's stdin is not a terminal to give the restored tree");
        var fd = FileIo.Dup(0);
        try
        {
            // As CRIU: the caller's terminal takes the settings the job's terminal had.
            if (_paramsSet.Add(info.Id))
                SetParams(ctx, fd.Fd, info);
            FdOps.SetStatusFlags(fd.Fd, (int)tfe.Flags);
            TryOwner(ctx, fd.Fd, tfe);
            InheritedTerminal = true;
            return fd;
        }
        catch
        {
            fd.Dispose();
            throw;
        }
    }

    private static unsafe bool IsTerminal(int fd)
    {
        byte* t = stackalloc byte[64];
        return RawSyscall.TryCall(Sysno.ioctl, fd, Terminals.TCGETS2, (long)t) == 0;
    }

    private void MakePair(RestoreContext ctx, uint index, string ptmx)
    {
        uint masterId = (index << 1) | 1, slaveId = index << 1;
        var masterInfo = _infos![masterId];
        _infos.TryGetValue(slaveId, out var slaveInfo);
        var masterFile = _files.Single(f => f.TtyInfoId == masterId);
        Keep(index, made =>
        {
            var master = OpenPtmx(ptmx, (int)index);
            made.Add((masterFile.Id, master));
            Terminals.SetInt(master.Fd, Terminals.TIOCSPTLCK, 0);
            if (masterInfo.Termios is not null)
                SetParams(ctx, master.Fd, masterInfo);
            if (masterInfo.PacketMode)
                Terminals.SetInt(master.Fd, Terminals.TIOCPKT, 1);
            foreach (var sf in _files.Where(f => f.TtyInfoId == slaveId))
            {
                int access = (int)sf.Flags & FileIo.O_ACCMODE;
                var slave = new UnixFd((int)RawSyscall.Call($"ioctl(TIOCGPTPEER) on pty {index}", Sysno.ioctl, master.Fd,
                    Terminals.TIOCGPTPEER, access | FileIo.O_NOCTTY | FileIo.O_CLOEXEC));
                made.Add((sf.Id, slave));
                FdOps.SetStatusFlags(slave.Fd, (int)sf.Flags);
                TryOwner(ctx, slave.Fd, sf);
            }
            using (var peer = new UnixFd((int)RawSyscall.Call($"ioctl(TIOCGPTPEER) on pty {index}", Sysno.ioctl, master.Fd,
                Terminals.TIOCGPTPEER, FileIo.O_RDWR | FileIo.O_NOCTTY | FileIo.O_CLOEXEC)))
            {
                if (slaveInfo?.Termios is not null)
                    SetParams(ctx, peer.Fd, slaveInfo);
                // Bytes the master had yet to read were written on the slave, and the other way round.
                foreach (var bytes in _data.GetValueOrDefault(masterId, []))
                    FileIo.WriteExactly(peer.Fd, bytes);
                foreach (var bytes in _data.GetValueOrDefault(slaveId, []))
                    FileIo.WriteExactly(master.Fd, bytes);
                if (slaveInfo?.Exclusive == true)
                    Terminals.Ioctl(peer.Fd, Terminals.TIOCEXCL);
            }
            if (masterInfo.Exclusive)
                Terminals.Ioctl(master.Fd, Terminals.TIOCEXCL);
            FdOps.SetStatusFlags(master.Fd, (int)masterFile.Flags);
            TryOwner(ctx, master.Fd, masterFile);
            if (masterInfo.Locked)
                Terminals.SetInt(master.Fd, Terminals.TIOCSPTLCK, 1);
            ctx.Log.Debug($"pty {index}: master and {made.Count - 1} slave description(s)");
        });
    }

    /// <summary>/dev/ptmx hands out the lowest free index; the wrong ones are held open until the right one
    /// comes (CRIU's __pty_open_ptmx_index), so an index below ours that is free only briefly cannot win.</summary>
    private static UnixFd OpenPtmx(string ptmx, int index)
    {
        var wrong = new List<UnixFd>();
        try
        {
            for (int i = 0; i < MaxPtmxTries; i++)
            {
                var fd = FileIo.Open(ptmx, FileIo.O_RDWR | FileIo.O_NOCTTY | FileIo.O_CLOEXEC);
                int got = Terminals.GetInt(fd.Fd, Terminals.TIOCGPTN);
                if (got == index)
                    return fd;
                wrong.Add(fd);
                if (got > index || index - got > MaxPtmxTries)
                    throw new CrispException($"pty index {index} is taken (/dev/ptmx gave {got})");
            }
            throw new CrispException($"pty index {index}: not handed out in {MaxPtmxTries} opens of /dev/ptmx");
        }
        finally
        {
            foreach (var fd in wrong)
                fd.Dispose();
        }
    }

    /// <summary>Locked termios first (they limit what TCSETS may change), then termios and window size.</summary>
    private static void SetParams(RestoreContext ctx, int fd, tty_info_entry info)
    {
        if (info.TermiosLocked is { } tl)
        {
            var want = TermiosEntries.FromEntry(tl, withSpeeds: false);
            var now = Terminals.GetTermios(fd, locked: true);
            // Setting them needs CAP_SYS_ADMIN; unchanged ones need nothing.
            if (!SameTermios(want, now))
                Terminals.SetTermios(fd, want, locked: true);
        }
        if (info.Termios is { } t)
            Terminals.SetTermios(fd, TermiosEntries.FromEntry(t, withSpeeds: true));
        if (info.Winsize is { } w)
            Terminals.SetWinSize(fd, new WinSize((ushort)w.WsRow, (ushort)w.WsCol, (ushort)w.WsXpixel, (ushort)w.WsYpixel));
        ctx.Log.Debug($"tty-info {info.Id:x}: termios and window size set");
    }

    private static bool SameTermios(Termios a, Termios b) =>
        a.Iflag == b.Iflag && a.Oflag == b.Oflag && a.Cflag == b.Cflag && a.Lflag == b.Lflag && a.Line == b.Line && a.Cc.AsSpan().SequenceEqual(b.Cc);

    private static void TryOwner(RestoreContext ctx, int fd, tty_file_entry tfe)
    {
        try { Fown.Restore(ctx, fd, tfe.Fown); }
        catch (SyscallException e) { ctx.Log.Warn($"tty {tfe.Id}: owner not restored: {e.Message}"); }
    }

    private void Load(RestoreContext ctx)
    {
        if (_infos is not null)
            return;
        var images = ctx.Images;
        _infos = images.Exists(ImageFile.TtyInfo)
            ? images.ReadAll<tty_info_entry>(ImageFile.TtyInfo).ToDictionary(i => i.Id)
            : [];
        _files = [];
        foreach (var e in images.ReadAll<file_entry>(ImageFile.Files))   // not Where(..).Select(..): see CheckpointLoader.ReadTree
            if (e.Type == fd_types.Tty && e.Tty is not null)
                _files.Add(e.Tty);
        if (images.Exists(ImageFile.TtyData))
            foreach (var d in images.ReadAll<tty_data_entry>(ImageFile.TtyData))
            {
                if (!_data.TryGetValue(d.TtyId, out var list))
                    _data[d.TtyId] = list = [];
                list.Add(d.Data.ToByteArray());
            }
    }

    public void Dispose()
    {
        foreach (var fd in _ready.Values)
            fd.Dispose();
        _ready.Clear();
    }
}
