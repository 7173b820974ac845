using System.Buffers.Binary;
using Crisp.Linux;
using Crisp.Linux.Proc;

namespace Crisp.Compel;

/// <summary>The code remote syscalls run in a dumped task (<see cref="MachineCode.Trampoline"/>: a syscall,
/// then rt_sigreturn), written into the unused zero tail of the task's [vdso] page —
/// past the end of the vdso's ELF image, where nothing ever jumps or reads. It is there before any
/// register is changed and stays until the last remote call of the process ends, so a thread parked
/// on it always finds it, also after crisp itself died. Written with PTRACE_POKEDATA (FOLL_FORCE: the
/// task gets a private copy of that page, as with a debugger's breakpoint); zeros are put back at the
/// end. crisp never dumps vdso contents, and the bytes are not code of the task. One instance per
/// <see cref="Tracer"/>: what a run holds goes with the run.</summary>
public sealed class VdsoTrampoline
{
    /// <summary>Offset of the rt_sigreturn part: where a thread waits between calls.</summary>
    public const int SigreturnOffset = MachineCode.TrampolineSigreturnOffset;

    private const int Slot = 16;
    private readonly Lock _gate = new();
    private readonly Dictionary<int, Entry> _held = [];

    private sealed class Entry(ulong address)
    {
        public ulong Address { get; } = address;
        public int Users { get; set; }
    }

    /// <summary>Puts the code in the vdso tail of process <paramref name="pid"/> (through its stopped thread
    /// <paramref name="tid"/>, on the tracer thread) or takes another reference to it. Returns its address,
    /// or 0 with <paramref name="why"/> when the task has no vdso with a free zero tail.</summary>
    public ulong Acquire(int pid, int tid, out string why)
    {
        why = "";
        lock (_gate)
        {
            if (_held.TryGetValue(pid, out var held))
            {
                held.Users++;
                return held.Address;
            }
        }
        ulong at = FindSlot(pid, out why);
        if (at == 0)
            return 0;
        ulong w0 = Ptrace.PeekData(tid, at), w1 = Ptrace.PeekData(tid, at + 8);
        var (c0, c1) = CodeWords();
        if (!(w0 == 0 && w1 == 0 || w0 == c0 && w1 == c1))   // zeros, or left by a crisp that died
        {
            why = $"the vdso tail at 0x{at:x} is not free";
            return 0;
        }
        Ptrace.PokeData(tid, at, c0);
        Ptrace.PokeData(tid, at + 8, c1);
        lock (_gate)
            _held[pid] = new Entry(at) { Users = 1 };
        return at;
    }

    /// <summary>Drops one reference; the last one puts the zeros back (the thread must be stopped and no
    /// thread of the process may be parked on the code any more). With <paramref name="putBack"/> false the
    /// bytes stay (a task crisp no longer holds).</summary>
    public void Release(int pid, int tid, bool putBack = true)
    {
        Entry? last = null;
        lock (_gate)
        {
            if (_held.TryGetValue(pid, out var held) && --held.Users == 0)
            {
                _held.Remove(pid);
                last = held;
            }
        }
        if (last is null || !putBack)
            return;
        // The task may have been killed meanwhile: nothing to put back then.
        Ptrace.TryRequest(PtraceRequest.POKEDATA, tid, (nint)last.Address, 0);
        Ptrace.TryRequest(PtraceRequest.POKEDATA, tid, (nint)(last.Address + 8), 0);
    }

    private static (ulong, ulong) CodeWords()
    {
        Span<byte> slot = stackalloc byte[Slot];
        slot.Clear();
        MachineCode.Trampoline.CopyTo(slot);
        return (BinaryPrimitives.ReadUInt64LittleEndian(slot), BinaryPrimitives.ReadUInt64LittleEndian(slot[8..]));
    }

    /// <summary>The last 16-byte-aligned 16 bytes of the vdso mapping, if they lie past its ELF image
    /// (program headers, sections and section headers); 0 otherwise.</summary>
    private static ulong FindSlot(int pid, out string why)
    {
        why = "";
        var vdso = ProcMaps.Enumerate(pid).FirstOrDefault(m => m.Kind == VmaKind.Vdso);
        if (vdso is null)
        {
            why = "the task has no [vdso]";
            return 0;
        }
        var image = new byte[vdso.Length];
        using (var mem = File.OpenHandle(Procfs.Host.Path(pid, "mem"), FileMode.Open, FileAccess.Read))
            if (RandomAccess.Read(mem, image, (long)vdso.Start) != image.Length)
            {
                why = "the [vdso] is not readable";
                return 0;
            }
        long end = ElfEnd(image);
        long slot = (image.Length - Slot) & ~(long)(Slot - 1);
        if (end < 0 || end > slot)
        {
            why = end < 0 ? "the [vdso] is not an ELF image crisp understands" : "the [vdso] has no free tail";
            return 0;
        }
        return vdso.Start + (ulong)slot;
    }

    /// <summary>End of everything the ELF64 image in <paramref name="image"/> describes; -1 if it is not one.</summary>
    internal static long ElfEnd(ReadOnlySpan<byte> image)
    {
        if (image.Length < 64 || !image[..4].SequenceEqual("\u007fELF"u8) || image[4] != 2)
            return -1;
        ulong phoff = BinaryPrimitives.ReadUInt64LittleEndian(image[0x20..]);
        ulong shoff = BinaryPrimitives.ReadUInt64LittleEndian(image[0x28..]);
        ulong phentsize = BinaryPrimitives.ReadUInt16LittleEndian(image[0x36..]);
        ulong phnum = BinaryPrimitives.ReadUInt16LittleEndian(image[0x38..]);
        ulong shentsize = BinaryPrimitives.ReadUInt16LittleEndian(image[0x3a..]);
        ulong shnum = BinaryPrimitives.ReadUInt16LittleEndian(image[0x3c..]);
        ulong end = Math.Max(64, Math.Max(phoff + phnum * phentsize, shoff + shnum * shentsize));
        if (end > (ulong)image.Length || shnum > 0 && shentsize < 64)
            return -1;
        for (ulong i = 0; i < shnum; i++)
        {
            var sh = image[(int)(shoff + i * shentsize)..];
            const uint SHT_NOBITS = 8;
            if (BinaryPrimitives.ReadUInt32LittleEndian(sh[4..]) == SHT_NOBITS)
                continue;
            ulong off = BinaryPrimitives.ReadUInt64LittleEndian(sh[0x18..]);
            ulong size = BinaryPrimitives.ReadUInt64LittleEndian(sh[0x20..]);
            end = Math.Max(end, off + size);
        }
        return end > (ulong)image.Length ? -1 : (long)end;
    }
}
