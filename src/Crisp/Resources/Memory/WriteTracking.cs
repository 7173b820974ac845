using System.Globalization;
using System.Runtime.InteropServices;
using Crisp.Dump;
using Crisp.Linux;
using Crisp.Linux.Proc;

namespace Crisp.Resources.Memory;

/// <summary>One task's dirty tracking as a pre-dump (or a dump with --track-mem -R) left it: the userfaultfd it
/// keeps open inside the task, and the address ranges registered with it for async write-protection; or, tracked
/// by soft-dirty bits, no fd (<see cref="SoftDirtyFd"/>) and the ranges whose bits were cleared.</summary>
public sealed record TrackedTask(int Pid, ulong StartTime, int Fd, IReadOnlyList<(ulong Start, ulong End)> Ranges)
{
    public const int SoftDirtyFd = -1;

    public bool SoftDirty => Fd == SoftDirtyFd;

    public bool Covers(ulong start, ulong end) => Ranges.Any(r => r.Start <= start && end <= r.End);
}

/// <summary>crisp-mem-track in an images directory: what the next dump of a pre-dump chain needs to trust the
/// tracking (one line per task: host pid, start time, fd, then START-END ranges in hex). Not a CRIU image:
/// CRIU tracks with soft-dirty bits, which need nothing kept between runs.</summary>
public static class TrackFile
{
    public const string Name = "crisp-mem-track";

    public static void Write(string dir, IEnumerable<TrackedTask> tasks, Security.ImageModes modes)
    {
        var lines = tasks.Select(t => string.Join(' ', new[] { t.Pid.ToString(CultureInfo.InvariantCulture),
            t.StartTime.ToString(CultureInfo.InvariantCulture), t.Fd.ToString(CultureInfo.InvariantCulture) }
            .Concat(t.Ranges.Select(r => $"{r.Start:x}-{r.End:x}"))));
        Security.PrivateFile.WriteAllBytes(Path.Combine(dir, Name), System.Text.Encoding.ASCII.GetBytes(string.Join('\n', lines) + "\n"), modes.File);
    }

    /// <summary>The tasks tracked by the dump in <paramref name="dir"/>, by host pid; empty when it left none.</summary>
    public static Dictionary<int, TrackedTask> Read(string dir)
    {
        var result = new Dictionary<int, TrackedTask>();
        string path = Path.Combine(dir, Name);
        if (!File.Exists(path))
            return result;
        foreach (var line in File.ReadAllLines(path))
        {
            var f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (f.Length < 3)
                continue;
            try
            {
                var ranges = f.Skip(3).Select(r => r.Split('-')).Select(p => (ulong.Parse(p[0], NumberStyles.HexNumber, CultureInfo.InvariantCulture),
                    ulong.Parse(p[1], NumberStyles.HexNumber, CultureInfo.InvariantCulture))).ToList();
                var t = new TrackedTask(int.Parse(f[0], CultureInfo.InvariantCulture), ulong.Parse(f[1], CultureInfo.InvariantCulture),
                    int.Parse(f[2], CultureInfo.InvariantCulture), ranges);
                result[t.Pid] = t;
            }
            catch (Exception e) when (e is FormatException or OverflowException or IndexOutOfRangeException)
            {
                throw new CrispException($"{path}: bad line '{line}'");
            }
        }
        return result;
    }
}

/// <summary>Dirty-page tracking by userfaultfd async write-protection and PAGEMAP_SCAN (Linux 6.7+; this kernel
/// has no soft-dirty bits). The userfaultfd must belong to the task's own mm, so it is made in the task by
/// remote syscalls (UFFD_USER_MODE_ONLY: allowed without privilege; async WP resolves faults in the kernel
/// without a reader, so nothing ever waits on it) and stays open there between crisp runs, at a high fd
/// number (below RLIMIT_NOFILE, at most 1023), close-on-exec. The program can see it in /proc/self/fd; the final
/// dump leaves it out of the images and closes it (the kernel then drops the registration and the wp bits).
/// A write to a protected page clears its wp bit: PAGEMAP_SCAN reports it PAGE_IS_WRITTEN until the next
/// PM_SCAN_WP_MATCHING scan protects it again. Where that is missing and soft-dirty bits work
/// (<see cref="DirtyTracking"/>), the same calls track by soft-dirty bits: nothing kept in the task, `4` written to
/// /proc/PID/clear_refs to reset, pagemap bit 55 (PAGE_IS_SOFT_DIRTY) read by <see cref="PagePlan"/>; a VMA mapped
/// anew is soft-dirty as a whole (VM_SOFTDIRTY), so every VMA of the ranges cleared last time is trusted.</summary>
public static class WriteTracker
{
    private const long UFFD_USER_MODE_ONLY = 1;
    private const ulong UFFD_API = 0xAA, FEATURE_WP_UNPOPULATED = 1 << 13, FEATURE_WP_ASYNC = 1 << 15;
    private const long UFFDIO_API = 0xC018AA3F, UFFDIO_REGISTER = 0xC020AA00;
    private const ulong MODE_WP = 2;
    private const int HighestFd = 1023;

    /// <summary>A userfaultfd with the write-protect-async features crisp arms (fdinfo "API: aa:FEATURES:IOCTLS"): a
    /// tracker a pre-dump left whose chain this dump does not continue (a chain given up, a plain checkpoint after a
    /// pre-dump). It is crisp's, not the program's: left out of the images like the chain's own.</summary>
    public static bool IsCrispTracker(int pid, int fd, string target)
    {
        if (target != "anon_inode:[userfaultfd]")
            return false;
        string? api;
        try { api = Linux.Proc.Procfs.Host.ReadText(pid, $"fdinfo/{fd}").Split('\n').FirstOrDefault(l => l.StartsWith("API:", StringComparison.Ordinal)); }
        catch (IOException) { return false; }
        var parts = api?[4..].Trim().Split(':');
        return parts is { Length: >= 2 } && ulong.TryParse(parts[1], System.Globalization.NumberStyles.HexNumber, null, out ulong features)
            && (features & (FEATURE_WP_ASYNC | FEATURE_WP_UNPOPULATED)) == (FEATURE_WP_ASYNC | FEATURE_WP_UNPOPULATED);
    }

    /// <summary>Private writable memory whose pages the dumps store: what is tracked.</summary>
    public static bool Trackable(DumpedVma vma) => vma.HasPrivatePages && vma.Maps.CanWrite && !vma.Is(VmaStatus.Vdso)
        && !vma.Is(VmaStatus.AioRing)   // the kernel writes an AIO ring: no write protection sees it
        && !Hugetlb.IsHuge(vma.Entry.Flags);   // as CRIU: left out of pre-dumps, stored whole by the dump

    /// <summary>Whether <paramref name="previous"/> still describes the task: same process (pid and start time) and
    /// its fd still a userfaultfd.</summary>
    public static bool StillHeld(DumpTask task, TrackedTask? previous) => StillHeld(task.Pid, task.Stat.StartTime, previous);

    /// <summary>As <see cref="StillHeld(DumpTask, TrackedTask?)"/>, for a task not seized (its pid and start time).</summary>
    public static bool StillHeld(int pid, ulong startTime, TrackedTask? previous) =>
        previous is { } p && p.Pid == pid && p.StartTime == startTime
        && (p.SoftDirty ? DirtyTracking.Current == DirtyTrackingMethod.SoftDirty : IsUserfaultfd(pid, p.Fd));

    /// <summary>The VMA was tracked without a break since <paramref name="previous"/> was armed: registered now,
    /// and inside a range registered then (a VMA mapped anew at the same place is not registered).</summary>
    public static bool TrackedSince(DumpedVma vma, TrackedTask? previous, bool held) =>
        held && previous is { } p && (p.SoftDirty || vma.WriteProtectRegistered) && p.Covers(vma.Start, vma.End);

    /// <summary>Arms tracking in the seized task: the previous userfaultfd when it is still held, else a new one;
    /// every trackable VMA registered. Pages are not protected yet: <see cref="Reset"/> does that once the
    /// pages to store are known.</summary>
    public static TrackedTask Arm(DumpTask task, IReadOnlyList<DumpedVma> vmas, TrackedTask? previous, Log log)
    {
        bool held = StillHeld(task, previous);
        if (held ? previous!.SoftDirty : DirtyTracking.Current == DirtyTrackingMethod.SoftDirty)
            return new TrackedTask(task.Pid, task.Stat.StartTime, TrackedTask.SoftDirtyFd, [.. vmas.Where(Trackable).Select(v => (v.Start, v.End))]);
        int fd = held ? previous!.Fd : Create(task);
        var ranges = new List<(ulong, ulong)>();
        int busy = 0;
        foreach (var vma in vmas.Where(Trackable))
        {
            if (Register(task, fd, vma.Start, vma.End) is { } error)
            {
                log.Debug($"task {task.Pid}: {vma.Start:x}-{vma.End:x} not tracked ({error}): its pages are stored whole each time");
                busy += error.Contains("EBUSY", StringComparison.Ordinal) ? 1 : 0;
            }
            else
                ranges.Add((vma.Start, vma.End));
        }
        // Most likely the tracker of a chain that was never ended (a pre-dump not followed by a dump of its chain):
        // crisp leaves it alone, as that chain may still go on.
        if (busy > 0)
            log.Warn($"task {task.Pid}: {busy} VMA(s) are tracked by another userfaultfd (a pre-dump chain not ended? a dump with its --prev-images-dir ends it): their pages are stored whole by every dump");
        return new TrackedTask(task.Pid, task.Stat.StartTime, fd, ranges);
    }

    /// <summary>Write-protects every page of the registered ranges: writes from now on are what the next dump stores.</summary>
    public static void Reset(Pagemap pagemap, TrackedTask tracked)
    {
        if (tracked.SoftDirty)
        {
            ClearSoftDirty(tracked.Pid);
            return;
        }
        foreach (var (start, end) in tracked.Ranges)
            pagemap.ResetWritten(start, end);
    }

    /// <summary>Closes the task's tracking userfaultfd (the final dump): registration and wp bits go with it. With
    /// <paramref name="closeLater"/>, crisp first takes a copy (pidfd_getfd) and keeps it there: the task's close is
    /// then cheap, and the costly part — the kernel un-write-protecting every tracked page, 20–80 ms for 1 GiB — happens
    /// when crisp closes its copy, once the tree runs again.</summary>
    public static void Stop(DumpTask task, TrackedTask tracked, List<UnixFd>? closeLater = null)
    {
        if (tracked.SoftDirty)
            return;
        if (closeLater is not null)
        {
            try
            {
                using var pidfd = PidFd.Open(task.Pid);
                closeLater.Add(pidfd.GetFd(tracked.Fd));
            }
            catch (SyscallException) { }   // no copy: the close below pays for it while the tree is held
        }
        task.Call("close(tracking userfaultfd)", Sysno.close, tracked.Fd);
    }

    /// <summary>clear_refs 4: every page of the task clean, write-protected so that its next write sets bit 55.</summary>
    private static void ClearSoftDirty(int pid)
    {
        try
        {
            File.WriteAllText(Procfs.Host.Path(pid, "clear_refs"), "4");
        }
        catch (IOException e)
        {
            throw new CrispException($"task {pid}: clearing its soft-dirty bits (clear_refs 4) failed: {e.Message}");
        }
    }

    private static bool IsUserfaultfd(int pid, int fd)
    {
        try
        {
            return new FileInfo(Procfs.Host.Path(pid, $"fd/{fd}")).LinkTarget == "anon_inode:[userfaultfd]";
        }
        catch (IOException)
        {
            return false;
        }
    }

    private static int Create(DumpTask task)
    {
        int fd = Open(task);
        try
        {
            int high = FreeHighFd(task.Pid);
            task.Call("dup3(tracking userfaultfd)", Sysno.dup3, fd, high, FileIo.O_CLOEXEC);
            return high;
        }
        finally
        {
            task.Remote.Syscall(Sysno.close, fd);
        }
    }

    /// <summary>A tracking userfaultfd for the task's memory that only crisp holds (<see cref="RunningCopy"/>): made in the
    /// task, copied out (pidfd_getfd) and closed there before the task runs again. Its ranges are registered from crisp
    /// (<see cref="Linux.Userfaultfd.RegisterWriteProtect"/>); tracking ends when crisp closes it or dies.</summary>
    public static UnixFd CreateHeldByCrisp(DumpTask task)
    {
        int fd = Open(task);
        try
        {
            using var pidfd = PidFd.Open(task.Pid);
            return pidfd.GetFd(fd);
        }
        finally
        {
            task.Remote.Syscall(Sysno.close, fd);
        }
    }

    /// <summary>A userfaultfd made in the task with the async write-protect features: the task's fd.</summary>
    private static int Open(DumpTask task)
    {
        long fd = task.Remote.Syscall(Sysno.userfaultfd, FileIo.O_CLOEXEC | FileIo.O_NONBLOCK | UFFD_USER_MODE_ONLY);
        if (fd < 0)
            throw new CrispException($"task {task.Pid}: userfaultfd in the task failed ({Errnos.Describe((int)-fd)}): memory tracking needs it (see crisp check --feature mem_dirty_track)");
        Span<ulong> api = [UFFD_API, FEATURE_WP_ASYNC | FEATURE_WP_UNPOPULATED, 0];
        ulong at = task.Remote.PutOnScratch(MemoryMarshal.AsBytes(api));
        long r = task.Remote.Syscall(Sysno.ioctl, fd, UFFDIO_API, (long)at);
        if (r < 0)
        {
            task.Remote.Syscall(Sysno.close, fd);
            throw new CrispException($"task {task.Pid}: UFFDIO_API with async write-protection failed ({Errnos.Describe((int)-r)}): this kernel cannot track memory this way");
        }
        return (int)fd;
    }

    /// <returns>null when registered, else why not.</returns>
    private static string? Register(DumpTask task, int fd, ulong start, ulong end)
    {
        Span<ulong> reg = [start, end - start, MODE_WP, 0];
        ulong at = task.Remote.PutOnScratch(MemoryMarshal.AsBytes(reg));
        long r = task.Remote.Syscall(Sysno.ioctl, fd, UFFDIO_REGISTER, (long)at);
        return r < 0 ? $"UFFDIO_REGISTER: {Errnos.Describe((int)-r)}" : null;
    }

    /// <summary>The highest free fd below the task's RLIMIT_NOFILE (and 1024: a larger fd table costs the task memory).</summary>
    private static int FreeHighFd(int pid)
    {
        ulong soft = ProcLimits.Read(pid).FirstOrDefault(l => l.Name == "Max open files")?.Soft ?? 1024;
        int fd = (int)Math.Min(soft, (ulong)HighestFd + 1) - 1;
        for (; fd > 2; fd--)
            if (!File.Exists(Procfs.Host.Path(pid, $"fd/{fd}")) && !Directory.Exists(Procfs.Host.Path(pid, $"fd/{fd}")))
                return fd;
        throw new CrispException($"task {pid}: no free fd for the tracking userfaultfd");
    }
}
