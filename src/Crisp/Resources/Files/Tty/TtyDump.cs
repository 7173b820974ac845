using Crisp.Dump;
using Crisp.Images;
using Crisp.Images.Proto;
using Crisp.Linux;

namespace Crisp.Resources.Files.Tty;

/// <summary>Dump-wide: one tty_info_entry per pty end (termios, locked termios, window size, lock, packet
/// and exclusive modes, session and foreground group), a kept copy of each end for the queued data, and
/// the first fd of each end (to name it when the pair cannot be restored).</summary>
public sealed class TtyDump
{
    private readonly Dictionary<uint, tty_info_entry> _infos = [];
    private readonly Dictionary<uint, UnixFd> _ends = [];
    private readonly Dictionary<uint, (int Pid, int Fd, string Target)> _firstFd = [];
    private readonly List<(uint InfoId, byte[] Bytes)> _taken = [];
    private bool _finished;

    /// <summary>The tty_info id of the end <paramref name="fd"/> is (index &lt;&lt; 1 | master), collecting the
    /// end's state the first time it is seen.</summary>
    public uint InfoIdOf(DumpContext ctx, OpenFd fd)
    {
        var (major, minor) = Terminals.Split(fd.Stat.Rdev);
        bool master = Terminals.IsPtmx(major, minor);
        int index = master ? Terminals.GetInt(fd.Copy.Fd, Terminals.TIOCGPTN) : Terminals.SlaveIndex(major, minor);
        uint id = (uint)(index << 1) | (master ? 1u : 0u);
        if (_infos.ContainsKey(id))
        {
            // A second open of /dev/ptmx would be a new pty: one master description per pty is all there can be.
            if (master)
                throw new CrispException($"task {fd.Pid} fd {fd.Fd}: tty {fd.Target} (a second description of pty {index}'s master) is not supported");
            return id;
        }
        _firstFd[id] = (fd.Pid, fd.Fd, fd.Target);
        _infos[id] = Collect(ctx, fd, index, master);
        _ends[id] = FileIo.Dup(fd.Copy.Fd);
        return id;
    }

    /// <summary>CRIU's index of /dev/tty's one tty_info (type CTTY): its id is this index &lt;&lt; 1.</summary>
    public const uint ControllingTtyIndex = 1006;

    /// <summary>/dev/tty held open: one tty_info of type CTTY (CRIU's way). Its fds are opened again by each task
    /// itself at restore, once its session has its terminal back, so the task must have a controlling terminal
    /// now (an fd of /dev/tty kept after losing it would be a hung-up terminal).</summary>
    public uint ControllingTtyInfoId(DumpContext ctx, OpenFd fd)
    {
        var task = ctx.Tasks.First(t => t.Pid == fd.Pid);
        if (task.Stat.TtyNr == 0)
            throw new CrispException($"task {fd.Pid} fd {fd.Fd}: /dev/tty is open but the task has no controlling terminal any more");
        uint id = ControllingTtyIndex << 1;
        _infos.TryAdd(id, new tty_info_entry
        {
            Id = id,
            Type = TtyType.Ctty,
            Rdev = (uint)fd.Stat.Rdev,
            Dev = (uint)fd.Stat.Dev,
            Locked = false,
            Exclusive = false,
            PacketMode = false,
            Sid = 0,
            Pgrp = 0,
        });
        return id;
    }

    /// <summary>The console's or a VT's one tty_info (<see cref="DeviceTty"/>), collected at its first fd. CRIU keeps
    /// one for every VT, so a second VT's settings could not be told apart: refused.</summary>
    public uint DeviceInfoId(DumpContext ctx, OpenFd fd, TtyType kind)
    {
        uint id = DeviceTty.InfoIdOf(kind);
        if (_infos.TryGetValue(id, out var seen))
        {
            if (seen.Rdev != (uint)fd.Stat.Rdev)
                throw new CrispException($"task {fd.Pid} fd {fd.Fd}: tty {fd.Target} is a second virtual terminal (besides {_firstFd[id].Target}); " +
                    "CRIU's images keep the settings of one VT only");
            return id;
        }
        _firstFd[id] = (fd.Pid, fd.Fd, fd.Target);
        _infos[id] = DeviceTty.Collect(ctx, fd, kind);
        return id;
    }

    /// <summary>Termios, locked termios and window size of the line; none when it hung up (the other end is gone
    /// for good: CRIU keeps only the minimum).</summary>
    internal static void ReadSettings(DumpContext ctx, OpenFd fd, int lfd, tty_info_entry info)
    {
        try
        {
            info.Termios = TermiosEntries.ToEntry(Terminals.GetTermios(lfd));
            info.TermiosLocked = TermiosEntries.ToEntry(Terminals.GetTermios(lfd, locked: true));
            var ws = Terminals.GetWinSize(lfd);
            info.Winsize = new winsize_entry { WsRow = ws.Rows, WsCol = ws.Cols, WsXpixel = ws.XPixel, WsYpixel = ws.YPixel };
        }
        catch (SyscallException e) when (e.Errno == Errnos.EIO)
        {
            ctx.Log.Debug($"tty {fd.Target}: hung up, no termios");
        }
    }

    private static tty_info_entry Collect(DumpContext ctx, OpenFd fd, int index, bool master)
    {
        int lfd = fd.Copy.Fd;
        var info = new tty_info_entry
        {
            Id = (uint)(index << 1) | (master ? 1u : 0u),
            Type = TtyType.Pty,
            Rdev = (uint)fd.Stat.Rdev,
            Dev = (uint)fd.Stat.Dev,
            Pty = new tty_pty_entry { Index = (uint)index },
            // Required in CRIU's schema: set even when false or zero, so they are written.
            Locked = false,
            PacketMode = false,
            Sid = 0,
            Pgrp = 0,
        };
        if (master)
        {
            // The master answers for its slave's session without being anyone's terminal.
            // crisp's numbers; the images keep the tree's (its own pid namespace's).
            info.Sid = (uint)ctx.VirtualPidOf(Terminals.TryGetInt(lfd, Terminals.TIOCGSID) ?? 0);
            info.Pgrp = info.Sid == 0 ? 0 : (uint)ctx.VirtualPidOf(Terminals.TryGetInt(lfd, Terminals.TIOCGPGRP) ?? 0);
            info.Locked = Terminals.GetInt(lfd, Terminals.TIOCGPTLCK) != 0;
            info.PacketMode = Terminals.GetInt(lfd, Terminals.TIOCGPKT) != 0;
        }
        else
        {
            // A slave tells its session only to a member; /proc says which task has it as terminal.
            int ttyNr = Terminals.TtyNr(fd.Stat.Rdev);
            var member = ctx.Tasks.FirstOrDefault(t => t.Stat.TtyNr == ttyNr);
            if (member is not null)
            {
                info.Sid = (uint)ctx.VirtualPidOf(member.Stat.Session);
                info.Pgrp = (uint)Math.Max(0, ctx.VirtualPidOf(member.Stat.Tpgid));
            }
        }
        info.Exclusive = (Terminals.TryGetInt(lfd, Terminals.TIOCGEXCL) ?? 0) != 0;
        ReadSettings(ctx, fd, lfd, info);
        return info;
    }

    /// <summary>Every pty slave needs its master in the tree, but for the one terminal of a shell job; then
    /// the queued bytes of each complete pair are read out (CRIU does this last, too: it consumes them).</summary>
    public void Finish(DumpContext ctx)
    {
        if (_finished)
            return;
        _finished = true;
        var unpaired = _infos.Keys.Where(id => _infos[id].Type == TtyType.Pty && (id & 1) == 0 && !_infos.ContainsKey(id | 1)).ToList();
        foreach (uint id in unpaired)
        {
            var (pid, fd, target) = _firstFd[id];
            if (!ctx.Options.ShellJob && !ctx.Options.OrphanPtsMaster)
                throw new CrispException($"task {pid} fd {fd}: tty {target} (pty slave whose master is outside the dumped tree) is not supported (a shell job? use --shell-job)");
        }
        if (unpaired.Count > 1)
        {
            var (pid, fd, target) = _firstFd[unpaired[1]];
            throw new CrispException($"task {pid} fd {fd}: tty {target} is a second external terminal; a shell job can have only one");
        }
        CheckControllingTerminals(ctx);

        foreach (uint master in _infos.Keys.Where(id => (id & 1) == 1 && _infos[id].Termios is not null).Order().ToList())
        {
            Take(ctx, master, _ends[master].Fd, reopened: false);
            // The slave side is read through a new description of it (TIOCGPTPEER), so the task's own
            // slave descriptions keep their flags.
            long peer = RawSyscall.TryCall(Sysno.ioctl, _ends[master].Fd, Terminals.TIOCGPTPEER,
                FileIo.O_RDWR | FileIo.O_NOCTTY | FileIo.O_NONBLOCK | FileIo.O_CLOEXEC);
            if (peer < 0)
                continue;   // locked pty: nobody could have written on the slave side
            using var slave = new UnixFd((int)peer);
            Take(ctx, master & ~1u, slave.Fd, reopened: true);
        }
        if (_taken.Count > 0)
        {
            using var w = ctx.Images.CreateWriter(ImageFile.TtyData);
            foreach (var (id, bytes) in _taken)
                w.Write(new tty_data_entry { TtyId = id, Data = Google.Protobuf.ByteString.CopyFrom(bytes) });
        }
        if (_infos.Count == 0)
            return;
        using (var w = ctx.Images.CreateWriter(ImageFile.TtyInfo))
            foreach (var info in _infos.Values.OrderBy(i => i.Id))
                w.Write(info);
    }

    /// <summary>A task whose controlling terminal is one of the tree's ptys gets it back through its session
    /// leader; any other terminal (not a shell job) could not be restored.</summary>
    private void CheckControllingTerminals(DumpContext ctx)
    {
        if (ctx.Options.ShellJob)
            return;
        var pids = ctx.Tasks.Select(t => t.Pid).ToHashSet();
        // With --orphan-pts-master the unpaired slave is the tree's terminal too: restore makes its pair.
        bool Held(tty_info_entry i) => i.Type == TtyType.Pty && ((i.Id & 1) == 1 || ctx.Options.OrphanPtsMaster);
        foreach (var task in ctx.Tasks.Where(t => t.Stat.TtyNr != 0))
        {
            bool ours = _infos.Values.Any(i => Held(i) && Terminals.TtyNr(MakeSlaveDev(i.Pty.Index)) == task.Stat.TtyNr);
            if (!ours || !pids.Contains(task.Stat.Session))
                throw new CrispException($"task {task.Pid} has a controlling terminal the tree does not hold the master of (a shell job? use --shell-job)");
        }
    }

    private static ulong MakeSlaveDev(uint index) =>
        ((Terminals.PtsFirstMajor + index / 256) << 8) | (index % 256);

    /// <summary>Reads, without blocking, what waits to be read at this end.</summary>
    private void Take(DumpContext ctx, uint id, int fd, bool reopened)
    {
        int flags = FdOps.Fcntl(fd, FdOps.F_GETFL);
        if (!reopened)
            FdOps.Fcntl(fd, FdOps.F_SETFL, flags | FileIo.O_NONBLOCK);
        try
        {
            var buf = new byte[16384];
            int off = 0;
            while (off < buf.Length)
            {
                long n = ReadSome(fd, buf.AsSpan(off));
                if (n <= 0)
                    break;
                off += (int)n;
            }
            if (off > 0)
            {
                _taken.Add((id, buf[..off]));
                ctx.Log.Debug($"tty-info {id:x}: {off} queued byte(s)");
            }
        }
        finally
        {
            if (!reopened)
                FdOps.Fcntl(fd, FdOps.F_SETFL, flags);
        }
    }

    private static unsafe long ReadSome(int fd, Span<byte> buffer)
    {
        fixed (byte* p = buffer)
            return RawSyscall.TryCall(Sysno.read, fd, (long)p, buffer.Length);
    }

    /// <summary>When the tree lives on, what was read out goes back: bytes read at one end are written at
    /// the other, so they wait at the same end again (lossless in raw mode; a cooked line discipline
    /// processes them once more, as with CRIU).</summary>
    public void Release(DumpContext ctx, bool killed)
    {
        if (!killed)
        {
            foreach (var (id, bytes) in _taken)
            {
                if (!_ends.TryGetValue(id | 1, out var master))
                    continue;
                try
                {
                    if ((id & 1) == 1)
                    {
                        long peer = RawSyscall.TryCall(Sysno.ioctl, master.Fd, Terminals.TIOCGPTPEER, FileIo.O_RDWR | FileIo.O_NOCTTY | FileIo.O_CLOEXEC);
                        if (peer < 0)
                            continue;
                        using var slave = new UnixFd((int)peer);
                        FileIo.WriteExactly(slave.Fd, bytes);
                    }
                    else
                        FileIo.WriteExactly(master.Fd, bytes);
                }
                catch (SyscallException e) { ctx.Log.Warn($"tty-info {id:x}: queued bytes not written back: {e.Message}"); }
            }
        }
        _taken.Clear();
        foreach (var fd in _ends.Values)
            fd.Dispose();
        _ends.Clear();
    }
}
