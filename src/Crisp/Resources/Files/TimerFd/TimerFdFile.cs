using Crisp.Dump;
using Crisp.Images.Proto;
using Crisp.Linux;
using Crisp.Restore;

namespace Crisp.Resources.Files.TimerFd;

/// <summary>timerfd (anon_inode:[timerfd]) — CRIU's TIMERFD kind: clock, settime flags, the time left
/// (fdinfo it_value is relative even for an absolute timer), interval and expirations not yet read.
/// Restore arms the new timer with the time that was left (an absolute one at now + left, on its own
/// clock), so time spent checkpointed does not count, then puts the unread ticks back with
/// TFD_IOC_SET_TICKS.</summary>
public sealed class TimerFdFile : IFileKind
{
    public fd_types Type => fd_types.Timerfd;

    public bool Claims(OpenFd fd) => AnonInode.Is(fd, "timerfd");

    public file_entry Dump(DumpContext ctx, uint id, OpenFd fd)
    {
        var (vsec, vnsec) = Pair(AnonInode.Line(fd, "it_value"));
        var (isec, insec) = Pair(AnonInode.Line(fd, "it_interval"));
        return new file_entry
        {
            Type = Type,
            Id = id,
            Tfd = new timerfd_entry
            {
                Id = id,
                Flags = (uint)fd.Flags,
                Fown = Fown.Of(fd),
                Clockid = (uint)AnonInode.Dec(AnonInode.Line(fd, "clockid")),
                Ticks = AnonInode.Dec(AnonInode.Line(fd, "ticks")),
                SettimeFlags = (uint)AnonInode.Octal(AnonInode.Line(fd, "settime flags")),
                Vsec = vsec,
                Vnsec = vnsec,
                Isec = isec,
                Insec = insec,
            },
        };
    }

    public UnixFd Open(RestoreContext ctx, file_entry entry)
    {
        var t = entry.Tfd ?? throw new CrispException($"files.img: TIMERFD entry {entry.Id} has no timerfd part");
        try
        {
            return NewDescription.Finish(ctx, EventObjects.TimerFd((int)t.Clockid, (int)t.Flags & FileIo.O_NONBLOCK), t.Flags, t.Fown, fd =>
            {
                bool armed = t.Vsec != 0 || t.Vnsec != 0 || t.Isec != 0 || t.Insec != 0;
                if (armed)
                {
                    var value = ((long)t.Vsec, (long)t.Vnsec);
                    if (value == (0, 0))
                        value = (0, 1);   // a periodic timer due right now: (0, 0) would disarm it
                    int flags = (int)t.SettimeFlags;
                    if ((flags & EventObjects.TFD_TIMER_ABSTIME) != 0)
                        value = Add(EventObjects.Now((int)t.Clockid), value);
                    EventObjects.TimerSet(fd, flags, value, ((long)t.Isec, (long)t.Insec));
                }
                if (t.Ticks != 0)
                    EventObjects.TimerSetTicks(fd, t.Ticks);
            });
        }
        catch (SyscallException e)
        {
            throw new CrispException($"timerfd {entry.Id} (clock {t.Clockid}): cannot restore: {e.Message}");
        }
    }

    /// <summary>"(sec, nsec)" as fdinfo prints it_value / it_interval.</summary>
    private static (ulong, ulong) Pair(string s)
    {
        var parts = s.Trim('(', ')', ' ').Split(',');
        if (parts.Length != 2)
            throw new CrispException($"timerfd: bad fdinfo time '{s}'");
        return (AnonInode.Dec(parts[0]), AnonInode.Dec(parts[1]));
    }

    private static (long, long) Add((long Sec, long Nsec) a, (long Sec, long Nsec) b)
    {
        long sec = a.Sec + b.Sec, nsec = a.Nsec + b.Nsec;
        return nsec >= 1_000_000_000 ? (sec + 1, nsec - 1_000_000_000) : (sec, nsec);
    }
}
