using System.Buffers.Binary;

namespace Crisp.Compel.Puppets;

/// <summary>The program a restore puppet runs: a minimal static x86-64 ELF (no libc, no interpreter)
/// whose entry sleeps (nanosleep) until crisp seizes it, followed by a <c>syscall; int3</c> gadget
/// that remote syscalls can point rip at. A puppet crisp never seized — crisp died between spawning and
/// seizing it — wakes after <see cref="UnseizedLifetimeSeconds"/> and exits by itself (it is not traced
/// yet, so EXITKILL cannot end it); it never burns CPU meanwhile. It maps only its own text page at <see cref="BaseAddress"/>
/// and one read-write data page after it (plus the kernel's stack, vdso and vvar), so little has to be
/// cleared before a task is rebuilt in it. The data page holds pointer arguments of remote syscalls.</summary>
public static class PuppetElf
{
    /// <summary>Load address of the text page; low, below where ld.so and non-PIE binaries go.</summary>
    public const ulong BaseAddress = 0x10000;

    public const ulong PageSize = Linux.Mman.PageSize;

    /// <summary>The read-write pages right after the text page (zero-filled, like a .bss).</summary>
    public const ulong DataAddress = BaseAddress + PageSize;

    /// <summary>Room for pointer arguments of remote syscalls: large enough for a seccomp filter of
    /// 4096 instructions (32 KiB) and a page to spare.</summary>
    public const ulong DataSize = 16 * PageSize;

    /// <summary>Everything the puppet program itself maps: [BaseAddress, End).</summary>
    public const ulong End = DataAddress + DataSize;

    private const int ElfHeaderSize = 64, ProgramHeaderSize = 56, ProgramHeaders = 3;
    private const int CodeOffset = ElfHeaderSize + ProgramHeaderSize * ProgramHeaders;

    /// <summary>How long an unseized puppet waits before it exits on its own.</summary>
    public const int UnseizedLifetimeSeconds = 30;

    public static ulong EntryAddress => BaseAddress + CodeOffset;

    /// <summary>Address of the <c>syscall; int3</c> gadget inside the puppet's text.</summary>
    public static ulong SyscallGadgetAddress => EntryAddress + Linux.MachineCode.PuppetGadgetOffset;

    /// <summary>Address of the syscall-batch code inside the puppet's text (<c>MachineCode.SyscallBatch</c>).</summary>
    public static ulong SyscallBatchAddress => EntryAddress + Linux.MachineCode.PuppetBatchOffset;

    /// <param name="unseizedLifetimeSeconds">How long the puppet sleeps before exiting if nobody seizes it.</param>
    public static byte[] Build(int unseizedLifetimeSeconds = UnseizedLifetimeSeconds)
    {
        var code = Linux.MachineCode.PuppetProgram(unseizedLifetimeSeconds);
        var image = new byte[CodeOffset + code.Length];
        var span = image.AsSpan();
        // e_ident: magic, 64-bit, little-endian, version 1, System V ABI.
        span[0] = 0x7F; span[1] = (byte)'E'; span[2] = (byte)'L'; span[3] = (byte)'F';
        span[4] = 2; span[5] = 1; span[6] = 1;
        BinaryPrimitives.WriteUInt16LittleEndian(span[16..], 2);        // ET_EXEC
        BinaryPrimitives.WriteUInt16LittleEndian(span[18..], Linux.MachineCode.ElfMachine);
        BinaryPrimitives.WriteUInt32LittleEndian(span[20..], 1);        // EV_CURRENT
        BinaryPrimitives.WriteUInt64LittleEndian(span[24..], EntryAddress);
        BinaryPrimitives.WriteUInt64LittleEndian(span[32..], ElfHeaderSize); // e_phoff
        BinaryPrimitives.WriteUInt16LittleEndian(span[52..], ElfHeaderSize);
        BinaryPrimitives.WriteUInt16LittleEndian(span[54..], ProgramHeaderSize);
        BinaryPrimitives.WriteUInt16LittleEndian(span[56..], ProgramHeaders);

        // PT_LOAD: the whole file, read + execute.
        WriteProgramHeader(span[ElfHeaderSize..], type: 1, flags: 5, vaddr: BaseAddress, size: (ulong)image.Length, align: 0x1000);
        // PT_LOAD: the data pages, read + write, nothing from the file.
        WriteProgramHeader(span[(ElfHeaderSize + ProgramHeaderSize)..], type: 1, flags: 6, vaddr: DataAddress, size: 0, align: 0x1000, memSize: DataSize);
        // PT_GNU_STACK: non-executable stack, so the kernel sets no READ_IMPLIES_EXEC personality.
        WriteProgramHeader(span[(ElfHeaderSize + 2 * ProgramHeaderSize)..], type: 0x6474E551, flags: 6, vaddr: 0, size: 0, align: 16);

        code.CopyTo(span[CodeOffset..]);
        return image;
    }

    private static void WriteProgramHeader(Span<byte> ph, uint type, uint flags, ulong vaddr, ulong size, ulong align, ulong? memSize = null)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(ph, type);
        BinaryPrimitives.WriteUInt32LittleEndian(ph[4..], flags);
        BinaryPrimitives.WriteUInt64LittleEndian(ph[8..], 0);          // p_offset (file start)
        BinaryPrimitives.WriteUInt64LittleEndian(ph[16..], vaddr);
        BinaryPrimitives.WriteUInt64LittleEndian(ph[24..], vaddr);     // p_paddr
        BinaryPrimitives.WriteUInt64LittleEndian(ph[32..], size);      // p_filesz
        BinaryPrimitives.WriteUInt64LittleEndian(ph[40..], memSize ?? size); // p_memsz
        BinaryPrimitives.WriteUInt64LittleEndian(ph[48..], align);
    }
}
