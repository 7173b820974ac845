using Crisp.Linux.Proc;
using Crisp.Linux;
using Microsoft.Win32.SafeHandles;

namespace Crisp.Compel;

/// <summary>Runs syscalls inside a seized, stopped thread ("remote syscalls") and reads/writes its memory.
/// While open, the thread's signals are all blocked (so none is consumed by our injections) and its
/// registers are ours; <see cref="Dispose"/> unmaps the scratch pages and puts registers and signal mask
/// back exactly, so a thread stopped inside a blocked syscall restarts it when detached.
/// A dumped task's thread is crash-safe while open (<see cref="IsCrashSafe"/>): its calls run on the
/// <see cref="VdsoTrampoline"/> with rsp on a <see cref="SigreturnFrame"/> of its own state, and between
/// calls it waits at the trampoline's rt_sigreturn. If crisp dies (the kernel then detaches the thread)
/// the thread finishes the call in hand, runs rt_sigreturn and carries on with its own registers, signal
/// mask and FPU state. Nothing is ever patched into the task's code.</summary>
public sealed class RemoteTask : IDisposable
{
    private const int PageSize = Mman.PageSize;

    private readonly Tracer _tracer;
    private readonly Log _log;
    private readonly bool _useScratch;
    private readonly ulong _knownGadget;
    private readonly ulong _knownData;
    private readonly ulong _knownBatch;
    private ulong _savedSigMask;
    private readonly List<int> _suppressedSignals = [];
    private SafeFileHandle? _mem;
    private ulong _scratch;     // page 0: gadget (r-x), page 1: data (rw-); crash-safe: one data page
    private ulong _trampoline;  // crash-safe mode: the vdso code; 0 otherwise
    private SigreturnFrame? _frame;
    private byte[]? _underFrame;    // the stack bytes the frame covers, put back on Dispose
    private bool _disposed;
    private bool _gone;

    public SeizedThread Thread { get; }

    /// <summary>The thread's registers as they were when this object was created; restored on Dispose.</summary>
    public UserRegs SavedRegs { get; }

    /// <summary>Number of remote syscalls run so far.</summary>
    public long CallCount { get; private set; }

    /// <summary>The task a fork/clone made during the last call, as the tracer's (crisp's) pid namespace
    /// numbers it (PTRACE_GETEVENTMSG); 0 when the call made none. In a puppet inside a new pid namespace
    /// clone3 returns the child's pid in that namespace, while crisp needs the host's for ptrace and /proc.</summary>
    public int LastNewTask { get; private set; }

    /// <param name="useScratchPage">Crash-safe mode (the vdso trampoline), or where the task has no usable
    /// vdso, a private gadget page mapped on the first call. False: patch the code at rip for every call
    /// (tests only; never crash-safe).</param>
    /// <param name="pinTracer">Pin the tracer thread to the CPU the thread last ran on while this object lives.</param>
    /// <param name="gadgetAddress">Address of a <c>syscall; int3</c> already in the task (e.g. a puppet's,
    /// <c>PuppetElf.SyscallGadgetAddress</c>); when given, neither patching nor a scratch gadget is used
    /// (the data page is still mapped on demand by <see cref="PutOnScratch"/>).</param>
    /// <param name="scratchDataAddress">Read-write memory already in the task to use for pointer arguments
    /// (a puppet's data pages, <paramref name="scratchDataSize"/> bytes); it is never unmapped.</param>
    /// <param name="log">Where the crash-safe set-up (or why a thread is not crash-safe) is logged.</param>
    /// <param name="batchAddress">Address of <c>MachineCode.SyscallBatch</c> in the task (a puppet's), or 0:
    /// <see cref="Syscalls"/> then runs its calls in one stop, their table at the end of the scratch data.</param>
    public RemoteTask(SeizedThread thread, bool useScratchPage = true, bool pinTracer = true,
        ulong gadgetAddress = 0, ulong scratchDataAddress = 0, int scratchDataSize = PageSize, Log? log = null,
        ulong batchAddress = 0, ulong crashSafeBatchPages = 0)
    {
        _knownBatch = batchAddress;
        _safeBatch = crashSafeBatchPages;
        _safeBatchBorrowed = crashSafeBatchPages != 0;
        _log = log ?? Log.Null;
        _knownData = scratchDataAddress;
        ScratchDataSize = scratchDataAddress != 0 ? scratchDataSize : PageSize;
        _tracer = thread.Tracer;
        Thread = thread;
        _useScratch = useScratchPage && gadgetAddress == 0;
        _knownGadget = gadgetAddress;
        if (thread.IsDetached)
            throw new InvalidOperationException($"{thread} is detached");
        (SavedRegs, _savedSigMask) = _tracer.Run(() =>
        {
            var regs = Ptrace.GetRegs(thread.Tid);
            ulong mask = Ptrace.GetSigMask(thread.Tid);
            // Parked on the frame before any signal is blocked: from here on a crisp that dies leaves
            // a thread that puts everything back by itself.
            if (useScratchPage && gadgetAddress == 0)
                Park(regs, mask);
            Ptrace.SetSigMask(thread.Tid, ~0UL);
            return (regs, mask);
        });
        if (pinTracer)
            _tracer.PinToCpuOf(thread.Tid);
        if (SwapsSignalMask(SavedRegs))
            ReadMaskSavedBySyscall();
    }

    /// <summary>The thread's own signal mask, put back on Dispose (and the one a dump records).</summary>
    public ulong SavedSigMask => _savedSigMask;

    /// <summary>Interrupted in a call that runs with a temporary mask (sigsuspend, ppoll, pselect6,
    /// epoll_pwait[2]): ptrace and /proc then show the temporary mask; the program's own is in the kernel's
    /// saved_sigmask until the thread next returns to user mode.</summary>
    private static bool SwapsSignalMask(UserRegs regs)
    {
        long nr = (long)regs.OrigRax, rax = (long)regs.Rax;
        bool swaps = nr is Sysno.rt_sigsuspend or Sysno.pselect6 or Sysno.ppoll or Sysno.epoll_pwait or Sysno.epoll_pwait2;
        return swaps && rax is -Errnos.EINTR or UserRegs.ERESTARTSYS or UserRegs.ERESTARTNOINTR or UserRegs.ERESTARTNOHAND
            or UserRegs.ERESTART_RESTARTBLOCK;
    }

    /// <summary>The first resume puts saved_sigmask back (restore_saved_sigmask, as no signal is delivered):
    /// read it after one harmless call. A thread whose flag was already consumed (an earlier RemoteTask
    /// put its mask back) keeps the mask read at the start.</summary>
    private void ReadMaskSavedBySyscall()
    {
        Syscall(Sysno.getpid);
        _tracer.Run(() =>
        {
            // Still everything blocked (the kernel never blocks SIGKILL and SIGSTOP): nothing was restored.
            const ulong Blockable = ~((1UL << 8) | (1UL << 18));
            ulong after = Ptrace.GetSigMask(Thread.Tid);
            if ((after & Blockable) == Blockable)
                return;
            _log.Debug($"remote: thread {Thread.Tid} was in syscall {(long)SavedRegs.OrigRax} with a temporary mask 0x{_savedSigMask:x}; its own is 0x{after:x}");
            _savedSigMask = after;
            if (_frame is not null)
            {
                Span<byte> mask = stackalloc byte[8];
                System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(mask, after);
                WriteMemory(_frame.Ucontext + SigreturnFrame.SigmaskOffset, mask);
            }
            Ptrace.SetSigMask(Thread.Tid, ~0UL);
        });
    }

    /// <summary>Remote calls run on the vdso trampoline and the thread survives crisp's death (see the class).</summary>
    public bool IsCrashSafe => _trampoline != 0;

    /// <summary>Address of the scratch data page (4 KiB, read-write) for pointer arguments; 0 until mapped.</summary>
    public ulong ScratchData => _knownData != 0 ? _knownData : _scratch == 0 ? 0 : IsCrashSafe ? _scratch : _scratch + PageSize;

    /// <summary>Bytes available at <see cref="ScratchData"/>.</summary>
    public int ScratchDataSize { get; }

    /// <summary>The pages this object mapped in the task (gadget + data), or null: a dump must not save them.</summary>
    public (ulong Start, ulong Length)? OwnedScratch => _scratch == 0 ? null : (_scratch, ScratchLength);

    /// <summary>The crash-safe batch pages this object mapped in the task, or null: a dump must not save them either.</summary>
    public (ulong Start, ulong Length)? OwnedBatchPages => _safeBatch == 0 || _safeBatchBorrowed ? null : (_safeBatch, SafeBatchPages * PageSize);

    private ulong ScratchLength => IsCrashSafe ? PageSize : 2UL * PageSize;

    /// <summary>Runs syscall <paramref name="nr"/> in the thread and returns its raw result (-errno on failure).</summary>
    public long Syscall(long nr, long a1 = 0, long a2 = 0, long a3 = 0, long a4 = 0, long a5 = 0, long a6 = 0)
        => _tracer.Run(() =>
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_gone)
                throw new InvalidOperationException($"{Thread} is gone");
            LastNewTask = 0;
            if (IsCrashSafe)
                return InvokeOnTrampoline(nr, a1, a2, a3, a4, a5, a6);
            if (_useScratch && _scratch == 0)
                MapScratch();
            if (_knownGadget != 0)
                return InvokeAt(_knownGadget, nr, a1, a2, a3, a4, a5, a6);
            return _scratch != 0 ? InvokeAt(_scratch, nr, a1, a2, a3, a4, a5, a6) : InvokeAtRip(nr, a1, a2, a3, a4, a5, a6);
        });

    /// <summary>Runs each call in turn in one hand-off to the tracer thread and returns their raw results: waking the
    /// tracer thread and being woken again costs more than the call itself on a loaded machine (a task's 64
    /// sigactions).</summary>
    public long[] Syscalls(IReadOnlyList<(long Nr, long A1, long A2, long A3, long A4)> calls)
        => Syscalls(calls.Select(c => new RemoteCall(c.Nr, c.A1, c.A2, c.A3, c.A4)).ToList());

    /// <inheritdoc cref="Syscalls(IReadOnlyList{ValueTuple{long, long, long, long, long}})"/>
    public long[] Syscalls(IReadOnlyList<RemoteCall> calls) => _tracer.Run(() =>
    {
        if (CanBatch(calls.Count))
            return RunBatch(calls);
        if (CanBatch(BatchCapacity) && calls.Count > BatchCapacity)
        {
            // More than one table holds: a batch per table's worth, still in order.
            var results = new long[calls.Count];
            for (int i = 0; i < calls.Count; i += BatchCapacity)
            {
                var chunk = calls.Skip(i).Take(BatchCapacity).ToList();
                (chunk.Count > 1 ? RunBatch(chunk) : OneByOne(chunk)).CopyTo(results, i);
            }
            return results;
        }
        if (CanBatchCrashSafe(calls.Count) && QuietSignal() is { Signal: > 0 } quiet)
            return RunCrashSafeBatch(calls, quiet);
        return OneByOne(calls);
    });

    /// <summary>A batch needs the puppet's batch code and room for its table in the half of the scratch data that
    /// pointer arguments (<see cref="PutOnScratch"/>, from its start) leave free.</summary>
    private bool CanBatch(int count) => _knownBatch != 0 && _knownData != 0 && count > 1 && count <= BatchCapacity;

    /// <summary>How many calls one batch table holds: half the scratch data, less whatever the last
    /// <see cref="PutOnScratch"/> put there beyond its first half (the calls' pointer arguments).</summary>
    private int BatchCapacity => Math.Min(ScratchDataSize / 2, ScratchDataSize - _scratchInUse) / MachineCode.SyscallBatchEntry;

    private int _scratchInUse;   // bytes from the start of the scratch data the last PutOnScratch wrote

    /// <summary>The calls as a table at the end of the scratch data, run by the batch code in one stop; each
    /// result is read back from its entry. The calls run in turn whatever each returns, as one by one.</summary>
    private long[] RunBatch(IReadOnlyList<RemoteCall> calls)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_gone)
            throw new InvalidOperationException($"{Thread} is gone");
        LastNewTask = 0;
        var table = BatchTable(calls, calls.Count, 0);
        var bytes = System.Runtime.InteropServices.MemoryMarshal.AsBytes(table.AsSpan());
        ulong at = _knownData + (ulong)(ScratchDataSize - bytes.Length);
        WriteMemory(at, bytes);
        var regs = SavedRegs.WithSyscall(_knownBatch, 0);
        regs.Rbx = at;
        regs.R12 = (ulong)calls.Count;
        RunToTrap(_knownBatch + (ulong)MachineCode.SyscallBatch.Length, regs, $"syscall batch of {calls.Count}");
        ReadMemory(at, bytes);
        CallCount += calls.Count;
        return BatchResults(table, calls.Count);
    }

    private const int BatchWords = MachineCode.SyscallBatchEntry / sizeof(long);

    /// <summary>A batch table of <paramref name="entries"/> entries (nr, six arguments, result), the first ones
    /// <paramref name="calls"/>, and <paramref name="extraWords"/> words after it.</summary>
    private static long[] BatchTable(IReadOnlyList<RemoteCall> calls, int entries, int extraWords)
    {
        var table = new long[entries * BatchWords + extraWords];
        for (int i = 0; i < calls.Count; i++)
            PutEntry(table, i, calls[i]);
        return table;
    }

    private static void PutEntry(long[] table, int i, RemoteCall c)
    {
        (table[i * BatchWords], table[i * BatchWords + 1], table[i * BatchWords + 2], table[i * BatchWords + 3]) = (c.Nr, c.A1, c.A2, c.A3);
        (table[i * BatchWords + 4], table[i * BatchWords + 5], table[i * BatchWords + 6]) = (c.A4, c.A5, c.A6);
    }

    private static RemoteCall EntryAt(long[] table, int i) => new(table[i * BatchWords], table[i * BatchWords + 1],
        table[i * BatchWords + 2], table[i * BatchWords + 3], table[i * BatchWords + 4], table[i * BatchWords + 5], table[i * BatchWords + 6]);

    /// <summary>The results the batch code wrote back into the first <paramref name="count"/> entries.</summary>
    private static long[] BatchResults(long[] table, int count)
    {
        var results = new long[count];
        for (int i = 0; i < count; i++)
            results[i] = table[i * BatchWords + BatchWords - 1];
        return results;
    }

    /// <summary>A crash-safe batch: a thread without seccomp or with filters (checked call by call in
    /// <see cref="FiltersAllow"/>: crisp's seize suspends them, but a crisp that dies lets them apply to the rest of
    /// the table), a table that fits the batch pages, and enough calls to pay for mapping them (three calls, the first
    /// time). Its calls must not change the disposition of the signal <see cref="QuietSignal"/> picks (a task's
    /// sigactions are only read).</summary>
    private bool CanBatchCrashSafe(int count) =>
        IsCrashSafe && count > 3 && Thread.SeccompMode is Seccomp.SECCOMP_MODE_DISABLED or Seccomp.SECCOMP_MODE_FILTER
        && (count + 2) * MachineCode.SyscallBatchEntry + sizeof(ulong) <= (SafeBatchPages - 1) * PageSize;

    private List<byte[]>? _filters;   // the thread's seccomp filters, read on the first batch
    private bool _safeBatchRefused;   // the batch pages could not be had: call by call from then on

    /// <summary>Whether the thread's seccomp filters (none: yes) let <paramref name="call"/> through from
    /// <paramref name="ip"/>: a filtered thread runs a batch only when each of its calls would be allowed, so that no
    /// call fails or kills in the batch that would not have on the trampoline, and none leaves the thread running on.</summary>
    private bool FiltersAllow(RemoteCall call, ulong ip)
    {
        if (Thread.SeccompMode == Seccomp.SECCOMP_MODE_DISABLED)
            return true;
        if (_filters is null)
        {
            _filters = [];
            for (int i = 0; Ptrace.SeccompGetFilter(Thread.Tid, i) is { } filter; i++)
                _filters.Insert(0, filter);   // index 0 is the newest; the order does not change the verdict
        }
        return SeccompFilterRun.Allows(_filters, (int)call.Nr, ip,
            (ulong)call.A1, (ulong)call.A2, (ulong)call.A3, (ulong)call.A4, (ulong)call.A5, (ulong)call.A6);
    }

    private const int SafeBatchPages = 3;
    private ulong _safeBatch;   // crash-safe batches: page 0 the code (r-x), then the table (rw-); 0 until the first
    private readonly bool _safeBatchBorrowed;   // another thread's (the leader's) batch pages: it unmaps them

    /// <summary>The crash-safe batch pages, mapped now if they are not yet (0 when the task refuses them): the threads
    /// of a task share the leader's (one address space; crisp runs one batch at a time), so a thread's batch costs
    /// no mapping of its own.</summary>
    public ulong CrashSafeBatchPages() => _tracer.Run(() =>
    {
        if (_safeBatch == 0 && !_safeBatchRefused && IsCrashSafe && !MapSafeBatch())
            _safeBatchRefused = true;
        return _safeBatchRefused ? 0 : _safeBatch;
    });

    /// <summary>A signal the thread ignores (SIG_IGN, or a default of ignore: SIGURG, SIGWINCH, SIGCHLD), does not
    /// block itself and has not pending; 0 when there is none. Raised at the end of a crash-safe batch, its delivery
    /// stops the traced thread; in an untraced one (crisp died) the kernel drops it at once. With it, the thread's
    /// process and thread ids in its own pid namespace, as the batch's tgkill must name them.</summary>
    private (int Signal, int Tgid, int Tid) QuietSignal()
    {
        var status = ProcStatus.ReadThread(Thread.Pid, Thread.Tid);
        if (status.NStgid.Length == 0 || status.NSpid.Length == 0)
            return default;
        int tgid = status.NStgid[^1], tid = status.NSpid[^1];
        ulong busy = status.SigPnd | status.ShdPnd | _savedSigMask;
        static ulong Bit(int sig) => 1UL << (sig - 1);
        foreach (int sig in (ReadOnlySpan<int>)[Signals.SIGURG, Signals.SIGWINCH, Signals.SIGCHLD])
            if (((busy | status.SigCgt) & Bit(sig)) == 0)
                return (sig, tgid, tid);
        for (int sig = 1; sig <= 64; sig++)
            if (sig is not (Signals.SIGKILL or Signals.SIGSTOP or Signals.SIGCONT) && (status.SigIgn & Bit(sig)) != 0 && (busy & Bit(sig)) == 0)
                return (sig, tgid, tid);
        return default;
    }

    /// <summary>The calls in one stop of a crash-safe thread (a dumped task's 62 sigactions: 124 stops one by one). The
    /// table runs on <see cref="MachineCode.CrashSafeSyscallBatch"/> with rsp on the thread's sigreturn frame; its last
    /// two entries unblock <paramref name="signal"/> and send it to the thread, whose delivery is the stop crisp waits
    /// for (PTRACE_CONT: no syscall stops on the way). The thread is then parked again, its mask all blocked. A crisp
    /// that dies meanwhile leaves a thread that finishes the table, has the ignored signal dropped, and runs
    /// rt_sigreturn from its frame: its own registers and mask, as after a single call (the batch pages stay mapped,
    /// as the scratch page does).</summary>
    private long[] RunCrashSafeBatch(IReadOnlyList<RemoteCall> calls, (int Signal, int Tgid, int Tid) quiet)
    {
        int signal = quiet.Signal;
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_gone)
            throw new InvalidOperationException($"{Thread} is gone");
        LastNewTask = 0;
        if (_safeBatchRefused || _safeBatch == 0 && !MapSafeBatch())
        {
            _safeBatchRefused = true;
            return OneByOne(calls);
        }
        int tid = Thread.Tid, n = calls.Count + 2;
        ulong tableAt = _safeBatch + PageSize, maskAt = tableAt + (ulong)(n * MachineCode.SyscallBatchEntry);
        var table = BatchTable(calls, n, 1);
        const long SigSetmask = 2;
        PutEntry(table, n - 2, new RemoteCall(Sysno.rt_sigprocmask, SigSetmask, (long)maskAt, 0, sizeof(ulong)));
        PutEntry(table, n - 1, new RemoteCall(Sysno.tgkill, quiet.Tgid, quiet.Tid, signal));
        table[n * BatchWords] = (long)~(1UL << (signal - 1));
        ulong ip = _safeBatch + MachineCode.CrashSafeBatchAfterSyscall;
        for (int i = 0; i < n; i++)
            if (!FiltersAllow(EntryAt(table, i), ip))
                return OneByOne(calls);
        var bytes = System.Runtime.InteropServices.MemoryMarshal.AsBytes(table.AsSpan());
        WriteMemory(tableAt, bytes);
        var regs = SavedRegs.WithSyscall(_safeBatch, 0);
        regs.Rsp = _frame!.Ucontext;
        regs.Rbx = tableAt;
        regs.R12 = (ulong)n;
        Ptrace.SetRegs(tid, regs);
        if (DetachInsideNextBatch)
            DetachAtFirstCall(tid);
        Ptrace.Cont(tid, 0);
        ulong stopRip = _safeBatch + MachineCode.CrashSafeBatchAfterSyscall, lastEntry = tableAt + (ulong)((n - 1) * MachineCode.SyscallBatchEntry);
        while (true)
        {
            var status = NextStop(tid);
            if (!status.Stopped)
                continue;
            if (status.Event == 0 && status.StopSignal == signal)
            {
                var at = Ptrace.GetRegs(tid);
                if (at.Rip == stopRip && at.Rbx == lastEntry)
                    break;
                if (at.Rip != stopRip)
                    throw new InvalidOperationException($"syscall batch in {tid}: signal {signal} at rip 0x{at.Rip:x} (batch code 0x{_safeBatch:x})");
                // Someone else's copy of the signal, delivered as the batch unblocked it: one the thread ignores,
                // dropped here as the kernel would have dropped it. Ours follows.
            }
            else if (status.Event is PtraceEvent.Fork or PtraceEvent.Vfork or PtraceEvent.Clone)
                LastNewTask = (int)Ptrace.GetEventMsg(tid);
            else if (status.Event == 0)
                _suppressedSignals.Add(status.StopSignal);   // SIGSTOP: re-sent on Dispose
            Ptrace.Cont(tid, 0);
        }
        // Parked again, as after a call on the trampoline; the signal is dropped when the thread next resumes.
        Ptrace.SetSigMask(tid, ~0UL);
        var parked = SavedRegs;
        parked.Rip = _trampoline + VdsoTrampoline.SigreturnOffset;
        parked.Rsp = _frame.Ucontext;
        parked.OrigRax = ulong.MaxValue;
        Ptrace.SetRegs(tid, parked);
        ReadMemory(tableAt, bytes);
        CallCount += calls.Count;
        return BatchResults(table, calls.Count);
    }

    /// <summary>Tests: the next crash-safe batch lets its thread go at its first call's syscall-entry stop, as the
    /// kernel does with every tracee of a crisp that dies, and throws.</summary>
    internal bool DetachInsideNextBatch { get; set; }

    private void DetachAtFirstCall(int tid)
    {
        Ptrace.Syscall(tid, 0);
        NextStop(tid);
        Ptrace.Detach(tid);
        Thread.IsDetached = true;
        _gone = true;
        throw new InvalidOperationException($"thread {tid} let go inside a syscall batch (test)");
    }

    /// <summary>The batch pages: mapped r-x (allowed under PR_SET_MDWE), the code written through /proc/PID/mem, the
    /// table pages then made writable.</summary>
    private bool MapSafeBatch()
    {
        ulong ip = _trampoline + VdsoTrampoline.SigreturnOffset;
        var map = new RemoteCall(Sysno.mmap, 0, SafeBatchPages * PageSize, Mman.PROT_READ | Mman.PROT_EXEC, Mman.MAP_PRIVATE | Mman.MAP_ANONYMOUS, -1, 0);
        if (!FiltersAllow(map, ip))
            return false;
        long addr = InvokeOnTrampoline(map.Nr, map.A1, map.A2, map.A3, map.A4, map.A5, map.A6);
        if (addr < 0 && addr > -4096)
            return false;   // refused (a memory limit, MDWE in some form): call by call then
        _safeBatch = (ulong)addr;
        WriteMemory(_safeBatch, MachineCode.CrashSafeSyscallBatch);
        var protect = new RemoteCall(Sysno.mprotect, addr + PageSize, (SafeBatchPages - 1) * PageSize, Mman.PROT_READ | Mman.PROT_WRITE);
        // Pages that stay r-x are still unmapped on Dispose; no batch runs on them.
        return FiltersAllow(protect, ip) && InvokeOnTrampoline(protect.Nr, protect.A1, protect.A2, protect.A3, 0, 0, 0) == 0;
    }

    /// <summary>The calls one by one, a stop (or two) each: where no batch can run.</summary>
    private long[] OneByOne(IReadOnlyList<RemoteCall> calls)
    {
        var results = new long[calls.Count];
        for (int i = 0; i < calls.Count; i++)
            results[i] = Syscall(calls[i].Nr, calls[i].A1, calls[i].A2, calls[i].A3, calls[i].A4, calls[i].A5, calls[i].A6);
        return results;
    }

    /// <summary>Runs the calls in one batch (<see cref="Syscalls(IReadOnlyList{RemoteCall})"/>) and then throws for the first
    /// that returned an error, naming it and the thread. Every call runs whatever the ones before returned: for calls
    /// where a failure fails the whole operation.</summary>
    public long[] CallAll(IReadOnlyList<(string Name, RemoteCall Call)> calls) =>
        CallAll(calls.Select(c => (c.Call, (Action<long>)(r => ThrowIfFailed(r, $"{c.Name} in thread {Thread.Tid}")))).ToList());

    /// <summary>As <see cref="CallAll(IReadOnlyList{ValueTuple{string, RemoteCall}})"/>, each result handed to its
    /// own check, in order (a check throws to fail the operation).</summary>
    public long[] CallAll(IReadOnlyList<(RemoteCall Call, Action<long> Check)> calls)
    {
        var results = Syscalls(calls.Select(c => c.Call).ToList());
        for (int i = 0; i < results.Length; i++)
            calls[i].Check(results[i]);
        return results;
    }

    /// <summary>Runs syscall <paramref name="nr"/> and throws, naming <paramref name="name"/> and the thread,
    /// when it returns an error.</summary>
    public long Call(string name, long nr, long a1 = 0, long a2 = 0, long a3 = 0, long a4 = 0, long a5 = 0, long a6 = 0)
        => ThrowIfFailed(Syscall(nr, a1, a2, a3, a4, a5, a6), $"{name} in thread {Thread.Tid}");

    /// <summary>A raw syscall result (-errno on failure) as a value or a SyscallException naming the call.</summary>
    public static long ThrowIfFailed(long result, string call)
    {
        if (result < 0 && result > -4096)
            throw new SyscallException(call, (int)-result);
        return result;
    }

    public long Getpid() => Syscall(Sysno.getpid);

    public long Mmap(ulong addr, ulong length, int prot, int flags, int fd = -1, long offset = 0)
        => Syscall(Sysno.mmap, (long)addr, (long)length, prot, flags, fd, offset);

    public long Munmap(ulong addr, ulong length) => Syscall(Sysno.munmap, (long)addr, (long)length);

    /// <summary>Writes task memory through /proc/PID/mem (works on read-only pages too).</summary>
    public void WriteMemory(ulong address, ReadOnlySpan<byte> data)
    {
        RandomAccess.Write(Mem(), data, (long)address);
    }

    public void ReadMemory(ulong address, Span<byte> buffer)
    {
        int done = 0;
        while (done < buffer.Length)
        {
            int n = RandomAccess.Read(Mem(), buffer[done..], (long)address + done);
            if (n <= 0)
                throw new SyscallException($"pread({Procfs.Host.Path(Thread.Pid, "mem")}, 0x{address + (ulong)done:x})", Errnos.EIO);
            done += n;
        }
    }

    /// <summary>Copies <paramref name="data"/> to the start of the scratch data page and returns its address.</summary>
    public ulong PutOnScratch(ReadOnlySpan<byte> data)
    {
        if (data.Length > ScratchDataSize)
            throw new ArgumentException($"{data.Length} bytes do not fit the {ScratchDataSize}-byte scratch page");
        if (ScratchData == 0)
            _tracer.Run(MapScratch);
        WriteMemory(ScratchData, data);
        _scratchInUse = data.Length;
        return ScratchData;
    }

    /// <summary>Forgets the thread without putting anything back: for a task whose registers and memory
    /// are no longer the ones saved (it exec'd, or it was released with registers of its own).</summary>
    public void Abandon()
    {
        if (IsCrashSafe && !_disposed)
            _tracer.Trampolines.Release(Thread.Pid, Thread.Tid, putBack: false);
        _disposed = true;
        _mem?.Dispose();
        _tracer.Unpin();
    }

    /// <summary>Unmaps the scratch pages and gives the thread its registers and signal mask back.
    /// The thread stays seized; signals that arrived mid-injection and could not be blocked are re-sent.</summary>
    public void Dispose()
    {
        if (_disposed)
            return;
        _tracer.Run(() =>
        {
            try
            {
                if (_safeBatch != 0 && !_gone && !_safeBatchBorrowed)
                {
                    ThrowIfFailed(InvokeOnTrampoline(Sysno.munmap, (long)_safeBatch, SafeBatchPages * PageSize, 0, 0, 0, 0),
                        $"remote munmap(0x{_safeBatch:x}) in {Thread.Tid}");
                    _safeBatch = 0;
                }
                if (_scratch != 0 && !_gone)
                {
                    // The gadget cannot unmap its own page and then trap on it: use the code at rip.
                    long r = IsCrashSafe ? InvokeOnTrampoline(Sysno.munmap, (long)_scratch, (long)ScratchLength, 0, 0, 0, 0)
                        : _knownGadget != 0
                        ? InvokeAt(_knownGadget, Sysno.munmap, (long)_scratch, 2 * PageSize, 0, 0, 0, 0)
                        : InvokeAtRip(Sysno.munmap, (long)_scratch, 2 * PageSize);
                    if (r < 0)
                        throw new SyscallException($"remote munmap(0x{_scratch:x}) in {Thread.Tid}", (int)-r);
                    _scratch = 0;
                }
            }
            finally
            {
                _disposed = true;
                // ESRCH: the task was killed meanwhile; there is nothing left to put back.
                // Mask first: a crisp dying in between leaves a parked thread, which restores the mask itself.
                RestoreUnlessGone(PtraceRequest.SETSIGMASK, sizeof(ulong), _savedSigMask);
                RestoreRegsUnlessGone();
                Unpark();
                _mem?.Dispose();
                foreach (int sig in _suppressedSignals)
                    RawSyscall.TryCall(Sysno.tgkill, Thread.Pid, Thread.Tid, sig);
            }
        });
        _tracer.Unpin();
    }

    private unsafe void RestoreUnlessGone(int request, nint addr, ulong value)
    {
        long r = Ptrace.TryRequest(request, Thread.Tid, addr, (nint)(&value));
        if (r < 0 && r != -Errnos.ESRCH)
            throw new SyscallException($"ptrace({PtraceRequest.Name(request)}, {Thread.Tid})", (int)-r);
    }

    private unsafe void RestoreRegsUnlessGone()
    {
        var regs = SavedRegs;
        long r = Ptrace.TryRequest(PtraceRequest.SETREGS, Thread.Tid, 0, (nint)(&regs));
        if (r < 0 && r != -Errnos.ESRCH)
            throw new SyscallException($"ptrace(PTRACE_SETREGS, {Thread.Tid})", (int)-r);
    }

    private SafeFileHandle Mem() =>
        _mem ??= File.OpenHandle(Procfs.Host.Path(Thread.Pid, "mem"), FileMode.Open, FileAccess.ReadWrite);

    private void MapScratch()
    {
        if (IsCrashSafe)
        {
            // Code needs no page of its own here: one data page.
            long data = InvokeOnTrampoline(Sysno.mmap, 0, PageSize, Mman.PROT_READ | Mman.PROT_WRITE, Mman.MAP_PRIVATE | Mman.MAP_ANONYMOUS, -1, 0);
            if (data < 0 && data > -4096)
                throw new SyscallException($"remote mmap(scratch) in {Thread.Tid}", (int)-data);
            _scratch = (ulong)data;
            return;
        }
        // r-x first (allowed even under PR_SET_MDWE), gadget written through /proc/PID/mem,
        // then the second page made writable for data.
        long addr = _knownGadget != 0
            ? InvokeAt(_knownGadget, Sysno.mmap, 0, 2 * PageSize, Mman.PROT_READ | Mman.PROT_EXEC, Mman.MAP_PRIVATE | Mman.MAP_ANONYMOUS, -1, 0)
            : InvokeAtRip(Sysno.mmap, 0, 2 * PageSize, Mman.PROT_READ | Mman.PROT_EXEC, Mman.MAP_PRIVATE | Mman.MAP_ANONYMOUS, -1, 0);
        if (addr < 0 && addr > -4096)
            throw new SyscallException($"remote mmap(scratch) in {Thread.Tid}", (int)-addr);
        WriteMemory((ulong)addr, SyscallInstruction.Gadget);
        _scratch = (ulong)addr;
        long r = InvokeAt(_knownGadget != 0 ? _knownGadget : _scratch, Sysno.mprotect, (long)ScratchData, PageSize,
            Mman.PROT_READ | Mman.PROT_WRITE, 0, 0, 0);
        if (r < 0)
            throw new SyscallException($"remote mprotect(scratch) in {Thread.Tid}", (int)-r);
    }

    /// <summary>Crash-safe set-up (on the tracer thread, before the mask is touched): trampoline in the vdso,
    /// sigreturn frame below the red zone, then the registers of a thread waiting at the trampoline's
    /// rt_sigreturn. Anything missing (no vdso tail, no TRACESYSGOOD to tell syscall stops, a stack that
    /// cannot hold the frame) leaves the old, not crash-safe path, and says so in the log.</summary>
    private void Park(UserRegs regs, ulong mask)
    {
        int tid = Thread.Tid;
        if ((Thread.Options & PtraceOptions.TraceSysGood) == 0)
        {
            _log.Info($"remote syscalls in thread {tid} are not crash-safe: seized without PTRACE_O_TRACESYSGOOD");
            return;
        }
        ulong trampoline = _tracer.Trampolines.Acquire(Thread.Pid, tid, out string why);
        if (trampoline == 0)
        {
            _log.Info($"remote syscalls in thread {tid} are not crash-safe: {why}");
            return;
        }
        try
        {
            var frame = new SigreturnFrame(regs, mask, Ptrace.GetXstate(tid));
            var under = new byte[frame.Bytes.Length];
            ReadMemory(frame.Start, under);
            WriteMemory(frame.Start, frame.Bytes);
            var parked = regs;
            parked.Rip = trampoline + VdsoTrampoline.SigreturnOffset;
            parked.Rsp = frame.Ucontext;
            parked.OrigRax = ulong.MaxValue;
            Ptrace.SetRegs(tid, parked);
            (_trampoline, _frame, _underFrame) = (trampoline, frame, under);
            _log.Debug($"remote: thread {tid} parked crash-safe (trampoline 0x{trampoline:x}, frame 0x{frame.Ucontext:x})");
        }
        catch (Exception e) when (e is IOException or SyscallException or UnauthorizedAccessException)
        {
            _tracer.Trampolines.Release(Thread.Pid, tid);
            _log.Info($"remote syscalls in thread {tid} are not crash-safe: no room for a frame below rsp 0x{regs.Rsp:x} ({e.Message})");
        }
    }

    /// <summary>After the registers are back: the stack bytes under the frame, and the vdso zeros once no
    /// thread of the task uses the trampoline any more.</summary>
    private void Unpark()
    {
        if (!IsCrashSafe)
            return;
        if (!_gone)
        {
            try { WriteMemory(_frame!.Start, _underFrame); }
            catch (IOException) { }   // killed meanwhile
            _tracer.Trampolines.Release(Thread.Pid, Thread.Tid);
        }
        _log.Debug($"remote: thread {Thread.Tid} released");
    }

    /// <summary>One call on the trampoline: rip at its syscall, rsp at the frame, then PTRACE_SYSCALL to the
    /// syscall-entry stop and on to the syscall-exit stop, where the thread is parked again at the
    /// rt_sigreturn. No int3 (a SIGTRAP nobody catches would kill the task) and no single-step.</summary>
    private long InvokeOnTrampoline(long nr, long a1, long a2, long a3, long a4, long a5, long a6)
    {
        int tid = Thread.Tid;
        var regs = CallRegisters(_trampoline, nr, a1, a2, a3, a4, a5, a6);
        regs.Rsp = _frame!.Ucontext;
        // An unblockable signal (SIGSTOP) on the way: resumed without it; it is re-sent on Dispose.
        var after = SyscallStops.Run(tid, regs, Died, _suppressedSignals.Add);
        if (after.Rip != _trampoline + VdsoTrampoline.SigreturnOffset)
            throw new InvalidOperationException(
                $"remote syscall {nr} in {tid}: syscall exit at rip 0x{after.Rip:x} (trampoline 0x{_trampoline:x})");
        CallCount++;
        return after.SyscallResult;
    }

    /// <summary>The saved registers with syscall <paramref name="nr"/> and its arguments loaded, rip at
    /// <paramref name="rip"/>.</summary>
    private UserRegs CallRegisters(ulong rip, long nr, long a1, long a2, long a3, long a4, long a5, long a6)
        => SavedRegs.WithSyscall(rip, nr, a1, a2, a3, a4, a5, a6);

    /// <summary>The thread's next wait status; throws (and remembers) when it died.</summary>
    private WaitStatus NextStop(int tid)
    {
        Wait.WaitPid(tid, out var status, Wait.WALL);
        if (!status.Dead)
            return status;
        throw Died(status);
    }

    private TaskGoneException Died(WaitStatus status)
    {
        _gone = true;
        return new TaskGoneException(Thread, status);
    }

    /// <summary>First-call form: the gadget is written over the 3 bytes at rip and put back afterwards.</summary>
    private long InvokeAtRip(long nr, long a1 = 0, long a2 = 0, long a3 = 0, long a4 = 0, long a5 = 0, long a6 = 0)
    {
        ulong at = SavedRegs.Rip;
        ulong original = Ptrace.PeekData(Thread.Tid, at);
        Ptrace.PokeData(Thread.Tid, at, (original & ~SyscallInstruction.GadgetMask) | SyscallInstruction.GadgetWord);
        try
        {
            return InvokeAt(at, nr, a1, a2, a3, a4, a5, a6);
        }
        finally
        {
            Ptrace.PokeData(Thread.Tid, at, original);
        }
    }

    private long InvokeAt(ulong gadget, long nr, long a1, long a2, long a3, long a4, long a5, long a6)
    {
        var after = RunToTrap(gadget + (ulong)SyscallInstruction.Gadget.Length, CallRegisters(gadget, nr, a1, a2, a3, a4, a5, a6),
            $"remote syscall {nr}");
        CallCount++;
        return after.SyscallResult;
    }

    /// <summary>Sets <paramref name="regs"/>, resumes the thread and returns its registers at the int3 that ends
    /// the code (rip then <paramref name="trapRip"/>).</summary>
    private UserRegs RunToTrap(ulong trapRip, UserRegs regs, string what)
    {
        int tid = Thread.Tid;
        Ptrace.SetRegs(tid, regs);
        Ptrace.Cont(tid, 0);
        while (true)
        {
            var status = NextStop(tid);
            if (!status.Stopped)
                continue;
            if (status.Event == 0 && status.StopSignal == Signals.SIGTRAP)
            {
                var after = Ptrace.GetRegs(tid);
                if (after.Rip == trapRip)
                    return after;
                throw new InvalidOperationException(
                    $"{what} in {tid}: unexpected SIGTRAP at rip 0x{after.Rip:x} (expected 0x{trapRip:x})");
            }
            if (status.Event is PtraceEvent.Fork or PtraceEvent.Vfork or PtraceEvent.Clone)
                LastNewTask = (int)Ptrace.GetEventMsg(tid);
            // An interrupt/group-stop event left pending, or an unblockable signal (SIGSTOP):
            // resume without delivering it; signals are re-sent on Dispose.
            if (status.Event == 0)
                _suppressedSignals.Add(status.StopSignal);
            Ptrace.Cont(tid, 0);
        }
    }
}

/// <summary>One syscall for <see cref="RemoteTask.Syscalls(IReadOnlyList{RemoteCall})"/>: its number and arguments.</summary>
public readonly record struct RemoteCall(long Nr, long A1 = 0, long A2 = 0, long A3 = 0, long A4 = 0, long A5 = 0, long A6 = 0);

/// <summary>The task died (or was killed) while crisp was running code in it.</summary>
public sealed class TaskGoneException(SeizedThread thread, WaitStatus status)
    : Exception($"{thread} is gone: {status}")
{
    public SeizedThread Thread { get; } = thread;
    public WaitStatus Status { get; } = status;
}
