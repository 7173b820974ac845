using Crisp.Linux;

namespace Crisp.Images.Pages;

/// <summary>Room in crisp's own memory for a `--leave-running` dump's page data (issue 18, freeze time): while the
/// tree is frozen its pages are copied here instead of going to the page sink, the tree is let go, and then
/// <see cref="Drain"/> writes them out. One anonymous mapping, reserved and populated before the tree is seized (on
/// this kind of VM the first touch of fresh memory costs far more than the copy, and it must not be paid while the
/// tree is stopped), bounded by a budget (<see cref="Reserve"/>): what does not fit goes to the sink while frozen,
/// as without a spool. Each batch's pages are dropped as soon as they are written, so crisp's charge moves to
/// the images (tmpfs) or page cache instead of adding up.</summary>
public sealed class PageSpool : IDisposable
{
    private readonly nint _base;
    private readonly ulong _capacity;
    private ulong _used;
    private readonly List<SpooledPageSink> _sinks = [];
    private readonly Lock _lock = new();

    private PageSpool(nint at, ulong capacity)
    {
        _base = at;
        _capacity = capacity;
    }

    public ulong Capacity => _capacity;
    public ulong Used => _used;

    /// <summary>A spool of <paramref name="wanted"/> bytes (page-rounded), cut to a budget: half of MemAvailable
    /// and half of the memory cgroup's headroom. Null when even 1 MiB does not fit.</summary>
    public static PageSpool? Reserve(long wanted, Log log)
    {
        long budget = MemAvailable() / 2;
        if (Linux.Proc.CgroupLimits.Memory() is { } m)
            budget = Math.Min(budget, (m.Headroom - Footprint.CgroupHeadroom.OwnGrowth) / 2);
        long size = Math.Min(wanted, budget);
        size = (size + Mman.PageSize - 1) & ~(long)(Mman.PageSize - 1);
        if (size < (1 << 20))
        {
            log.Debug($"page spool: {wanted >> 20} MiB wanted, budget {budget >> 20} MiB: pages go to the sink while frozen");
            return null;
        }
        nint at = Mman.Map(0, (ulong)size, Mman.PROT_READ | Mman.PROT_WRITE, Mman.MAP_PRIVATE | Mman.MAP_ANONYMOUS | Mman.MAP_NORESERVE);
        long start = System.Diagnostics.Stopwatch.GetTimestamp();
        try { Mman.Advise(at, (ulong)size, Mman.MADV_POPULATE_WRITE); }
        catch (SyscallException e) { log.Debug($"page spool: {e.Message}: pages are touched one by one"); }
        // Both halves at once: the host's faults are per vCPU, and a second core halves the wait (measured 2.9 → 1.6 s
        // a GiB here).
        long half = size / 2 & ~(long)(Mman.PageSize - 1);
        var second = new Thread(() => { Crisp.Linux.Sched.UseProcessCpus(); Warm(at + (nint)half, size - half); }) { Name = "spool warm" };
        second.Start();
        Warm(at, half);
        second.Join();
        log.Debug($"page spool: {size >> 20} MiB populated and touched in {System.Diagnostics.Stopwatch.GetElapsedTime(start).TotalMilliseconds:F0} ms");
        if (size < wanted)
            log.Info($"page spool: {wanted >> 20} MiB of pages, {size >> 20} MiB may be held in memory (budget): the rest is written while the tree is frozen");
        return new PageSpool(at, (ulong)size);
    }

    /// <summary>A write to every page by the kernel and one by crisp: on a VM whose free memory goes back to the host
    /// (page reporting), a page the kernel has just handed out, already zeroed, still faults into the host at its first
    /// write (~12 µs a page here, 3 s a GiB), and once more the first time the other side touches it — a page crisp
    /// wrote is slow for the kernel's first write through its own mapping, and the reverse (a C probe, 1 GiB:
    /// process_vm_readv into pages crisp touched 1.45 s, into pages the kernel wrote 0.13 s; user reads after a
    /// kernel-only write 1.2 s). The frozen copy is the kernel's (process_vm_readv straight into the spool), the
    /// drain's hash is crisp's: both must be paid now, not while the tree is frozen or twice.</summary>
    private static unsafe void Warm(nint at, long size)
    {
        const int Chunk = 1 << 16;
        var source = GC.AllocateArray<byte>(Chunk, pinned: true);
        var local = new Iovec[ProcessVm.IovMax];
        var remote = new Iovec[ProcessVm.IovMax];
        fixed (byte* src = source)
        {
            for (int i = 0; i < remote.Length; i++)
                remote[i] = new Iovec((nint)src, Chunk);
            for (long o = 0; o < size;)
            {
                int n = 0;
                for (; n < local.Length && o < size; n++, o += Chunk)
                    local[n] = new Iovec(at + (nint)o, (nuint)Math.Min(Chunk, size - o));
                try { ProcessVm.Readv(Environment.ProcessId, local.AsSpan(0, n), remote.AsSpan(0, n)); }
                catch (SyscallException) { break; }   // no process_vm_readv on itself (seccomp, ptrace policy): crisp's touch alone
            }
        }
        byte* p = (byte*)at;
        for (long o = 0; o < size; o += Mman.PageSize)
            p[o] = 0;
    }

    /// <summary>A sink whose pages are held here until <see cref="Drain"/>.</summary>
    public IPageSink Wrap(IPageSink inner)
    {
        var sink = new SpooledPageSink(inner, this);
        lock (_lock)
            _sinks.Add(sink);
        return sink;
    }

    /// <summary>Room for <paramref name="length"/> bytes, or false when the spool is full.</summary>
    internal bool TryTake(int length, out nint at)
    {
        ulong rounded = ((ulong)length + Mman.PageSize - 1) & ~(ulong)(Mman.PageSize - 1);
        lock (_lock)
        {
            if (_used + rounded > _capacity)
            {
                at = 0;
                return false;
            }
            at = _base + (nint)_used;
            _used += rounded;
            return true;
        }
    }

    /// <summary>Whether the bytes at <paramref name="at"/> lie in the spool (taken room the dump read into).</summary>
    internal bool Holds(nint at, int length) =>
        (ulong)at >= (ulong)_base && (ulong)at + (ulong)length <= (ulong)_base + _capacity;

    /// <summary>The held pages no longer needed (written out): given back to the kernel.</summary>
    internal void Release(nint at, int length)
    {
        ulong rounded = ((ulong)length + Mman.PageSize - 1) & ~(ulong)(Mman.PageSize - 1);
        if (rounded > 0)
            Mman.Advise(at, rounded, Mman.MADV_DONTNEED);
    }

    /// <summary>Writes every held page to its sink, sinks in the order they were made, and completes them.</summary>
    public void Drain()
    {
        foreach (var sink in _sinks)
            sink.Replay();
        _sinks.Clear();
    }

    public void Dispose()
    {
        foreach (var sink in _sinks)
            sink.Abandon();
        _sinks.Clear();
        Mman.Unmap(_base, _capacity);
    }

    private static long MemAvailable()
    {
        foreach (var line in File.ReadLines("/proc/meminfo"))
            if (line.StartsWith("MemAvailable:", StringComparison.Ordinal))
                return long.Parse(line.AsSpan(13).Trim().TrimEnd("kB").Trim()) * 1024;
        return 0;
    }
}

/// <summary>A page sink that holds its runs and their pages in a <see cref="PageSpool"/> until the spool drains;
/// once the spool is full it writes what it held and everything after straight to its own sink (order kept).</summary>
internal sealed class SpooledPageSink(IPageSink inner, PageSpool spool) : IPageSink, IPageRoom
{
    private readonly List<(PageRun[] Runs, nint Data, int Length)> _held = [];
    private bool _through, _completed, _disposed, _replayed;

    /// <summary>Room in the spool for a batch the dump reads straight into it (not once the sink goes through).</summary>
    public bool TryTakeRoom(int length, out nint at)
    {
        at = 0;
        return !_through && spool.TryTake(length, out at);
    }

    public unsafe void Write(ReadOnlySpan<PageRun> runs, ReadOnlySpan<byte> data)
    {
        fixed (byte* p = data)
        {
            if (!_through && data.Length > 0 && spool.Holds((nint)p, data.Length))
            {
                _held.Add((runs.ToArray(), (nint)p, data.Length));   // read into room taken before: kept in place
                return;
            }
        }
        if (!_through && spool.TryTake(data.Length, out nint at))
        {
            data.CopyTo(new Span<byte>((void*)at, data.Length));
            _held.Add((runs.ToArray(), at, data.Length));
            return;
        }
        if (!_through)
        {
            _through = true;
            WriteHeld();
        }
        inner.Write(runs, data);
    }

    public void Complete()
    {
        if (_through)
            inner.Complete();
        else
            _completed = true;
    }

    public void Dispose()
    {
        if (_through)
            inner.Dispose();
        else
            _disposed = true;
    }

    /// <summary>Writes the held pages, then completes and closes the sink as the dump asked before.</summary>
    public void Replay()
    {
        if (_through || _replayed)
            return;
        _replayed = true;
        WriteHeld();
        if (_completed)
            inner.Complete();
        if (_disposed)
            inner.Dispose();
    }

    /// <summary>A failed dump: the sink is closed without writing what it held.</summary>
    public void Abandon()
    {
        if (_through || _replayed)
            return;
        _replayed = true;
        _held.Clear();
        inner.Dispose();
    }

    private unsafe void WriteHeld()
    {
        foreach (var (runs, data, length) in _held)
        {
            inner.Write(runs, new ReadOnlySpan<byte>((void*)data, length));
            spool.Release(data, length);
        }
        _held.Clear();
    }
}
