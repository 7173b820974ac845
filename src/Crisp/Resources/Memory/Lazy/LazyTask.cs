using Crisp.Images;
using Crisp.Images.Proto;
using Crisp.Linux;

namespace Crisp.Resources.Memory.Lazy;

/// <summary>One restored task as the lazy-pages daemon sees it: its userfaultfd and pidfd, and the pages not copied
/// in yet — every pagemap run inside its lazy VMAs, cut at VMA ends (one UFFDIO_COPY never spans two VMAs), each
/// marked whether its data is in the local pages files or only on the page server (PE_LAZY without PE_PRESENT).
/// Addresses are the task's as it runs now: an mremap that moved pending pages shifts them, and each region keeps
/// how far it moved, so its data is still read at the address the images know it by.</summary>
public sealed class LazyTask : IDisposable
{
    private readonly List<Region> _pending;

    /// <summary>[Start, End) as mapped now; <paramref name="Moved"/> is how far mremap moved it (now minus dumped
    /// address, modulo 2^64): its pages are the images' at <see cref="ImageStart"/>.</summary>
    public readonly record struct Region(ulong Start, ulong End, bool Remote, ulong Moved = 0)
    {
        public ulong ImageStart => Start - Moved;
    }

    public LazyTask(int pid, UnixFd uffd, UnixFd? pidfd, mm_entry mm, PagemapReader pages)
    {
        Pid = pid;
        Uffd = uffd;
        PidFd = pidfd;
        var lazy = mm.Vmas.Where(LazyVmas.CanBeLazy).OrderBy(v => v.Start).ToList();
        _pending = [];
        foreach (var r in pages.Runs)
        {
            if ((r.Flags & (PagemapFlags.Present | PagemapFlags.Lazy)) == 0)
                continue;
            foreach (var v in lazy)
            {
                ulong s = Math.Max(r.Vaddr, v.Start), e = Math.Min(r.End, v.End);
                if (s < e)
                    _pending.Add(new Region(s, e, !r.IsPresent));
            }
        }
        _pending.Sort((a, b) => a.Start.CompareTo(b.Start));
        TotalPages = _pending.Sum(r => (long)((r.End - r.Start) / Mman.PageSize));
    }

    /// <summary>A child the task forked while pages were missing: its own userfaultfd (from the fork event), the
    /// parent's pending pages as they were at the fork (its pages are the parent's image pages), no pidfd.</summary>
    private LazyTask(LazyTask parent, UnixFd uffd)
    {
        Pid = parent.Pid;
        Uffd = uffd;
        _pending = [.. parent._pending];
        TotalPages = 0;
        Forked = true;
    }

    public LazyTask Fork(UnixFd uffd) => new(this, uffd);

    /// <summary>Made by a fork after the restore (its pages read as the parent's, by the parent's pid).</summary>
    public bool Forked { get; }
    /// <summary>The images' pid the pages are read by (a forked child's is its parent's).</summary>
    public int Pid { get; }
    public UnixFd Uffd { get; }
    public UnixFd? PidFd { get; }
    public long TotalPages { get; }
    /// <summary>The task's mm is gone (it exited): nothing more to copy.</summary>
    public bool Gone { get; set; }
    public bool Done => Gone || _pending.Count == 0;
    public long PendingPages => _pending.Sum(r => (long)((r.End - r.Start) / Mman.PageSize));

    /// <summary>The next region to push, clipped to <paramref name="maxBytes"/>.</summary>
    public Region Next(ulong maxBytes)
    {
        var r = _pending[0];
        return r with { End = Math.Min(r.End, r.Start + maxBytes) };
    }

    /// <summary>The pending region holding <paramref name="address"/>, clipped to <paramref name="maxBytes"/> from
    /// the address; null when the page is not pending (a hole, or dropped by the program).</summary>
    public Region? PendingAt(ulong address, ulong maxBytes)
    {
        int i = Find(address);
        if (i < 0)
            return null;
        var r = _pending[i];
        return r with { Start = address, End = Math.Min(r.End, address + maxBytes) };
    }

    /// <summary>[start, end) is in (copied), or dropped by the program (munmap, MADV_DONTNEED): no longer pending.</summary>
    public void Remove(ulong start, ulong end)
    {
        for (int i = 0; i < _pending.Count; i++)
        {
            var r = _pending[i];
            if (r.End <= start || r.Start >= end)
                continue;
            _pending.RemoveAt(i);
            int at = i;
            if (r.Start < start)
                _pending.Insert(at++, r with { End = start });
            if (r.End > end)
                _pending.Insert(at++, r with { Start = end });
            i = at - 1;
        }
    }

    /// <summary>The program moved [from, from+len) to [to, to+len) (mremap; the kernel moved the userfaultfd
    /// registration along): the pending pages in it move too, and whatever was pending at the target is gone (the
    /// kernel unmapped it first). Returns how many pending pages moved.</summary>
    public long Remap(ulong from, ulong to, ulong len)
    {
        var moved = new List<Region>();
        for (int i = 0; i < _pending.Count; i++)
        {
            var r = _pending[i];
            ulong s = Math.Max(r.Start, from), e = Math.Min(r.End, from + len);
            if (s < e)
                moved.Add(r with { Start = s - from + to, End = e - from + to, Moved = r.Moved + (to - from) });
        }
        Remove(from, from + len);
        Remove(to, to + len);
        _pending.AddRange(moved);
        _pending.Sort((a, b) => a.Start.CompareTo(b.Start));
        return moved.Sum(r => (long)((r.End - r.Start) / Mman.PageSize));
    }

    /// <summary>SIGKILL through the pidfd (the tree cannot get its pages).</summary>
    public void Kill()
    {
        if (PidFd is { } p && !Gone)
            RawSyscall.TryCall(Sysno.pidfd_send_signal, p.Fd, Linux.Signals.SIGKILL, 0, 0);
    }

    public void Dispose()
    {
        Uffd.Dispose();
        PidFd?.Dispose();
    }

    private int Find(ulong address)
    {
        int lo = 0, hi = _pending.Count - 1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >>> 1;
            var r = _pending[mid];
            if (address < r.Start)
                hi = mid - 1;
            else if (address >= r.End)
                lo = mid + 1;
            else
                return mid;
        }
        return -1;
    }
}
