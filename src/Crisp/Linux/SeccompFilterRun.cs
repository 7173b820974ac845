using System.Buffers.Binary;

namespace Crisp.Linux;

/// <summary>Runs a seccomp filter (classic BPF, as PTRACE_SECCOMP_GET_FILTER returns it) on one syscall, the way the
/// kernel would: what crisp needs to know before it lets a filtered thread run calls without a stop between them.
/// Only the instructions the kernel accepts in a seccomp filter are understood; anything else is "not allowed".</summary>
public static class SeccompFilterRun
{
    /// <summary>AUDIT_ARCH_X86_64, seccomp_data.arch of every syscall crisp runs in a task.</summary>
    public const uint AuditArchX8664 = 0xC000003E;

    private const int DataSize = 64;   // struct seccomp_data: nr, arch, instruction_pointer, args[6]

    /// <summary>Whether every filter of <paramref name="filters"/> lets the call through: SECCOMP_RET_ALLOW or
    /// SECCOMP_RET_LOG from each (the kernel takes the most restrictive action of all).</summary>
    public static bool Allows(IEnumerable<byte[]> filters, int nr, ulong instructionPointer, params ReadOnlySpan<ulong> args)
    {
        Span<byte> data = stackalloc byte[DataSize];
        data.Clear();
        BinaryPrimitives.WriteInt32LittleEndian(data, nr);
        BinaryPrimitives.WriteUInt32LittleEndian(data[4..], AuditArchX8664);
        BinaryPrimitives.WriteUInt64LittleEndian(data[8..], instructionPointer);
        for (int i = 0; i < args.Length && i < 6; i++)
            BinaryPrimitives.WriteUInt64LittleEndian(data[(16 + 8 * i)..], args[i]);
        foreach (var program in filters)
        {
            uint action = Run(program, data) & Seccomp.SECCOMP_RET_ACTION_FULL;
            if (action is not (Seccomp.SECCOMP_RET_ALLOW or Seccomp.SECCOMP_RET_LOG))
                return false;
        }
        return true;
    }

    /// <summary>The filter's return value for <paramref name="data"/>; 0 (kill) for anything malformed.</summary>
    public static uint Run(ReadOnlySpan<byte> program, ReadOnlySpan<byte> data)
    {
        int count = program.Length / 8;
        Span<uint> mem = stackalloc uint[16];
        mem.Clear();
        uint a = 0, x = 0;
        for (int pc = 0; pc < count; pc++)
        {
            var insn = program.Slice(pc * 8, 8);
            ushort code = BinaryPrimitives.ReadUInt16LittleEndian(insn);
            byte jt = insn[2], jf = insn[3];
            uint k = BinaryPrimitives.ReadUInt32LittleEndian(insn[4..]);
            switch (code)
            {
                case 0x20:   // ld [k]
                    if (k > DataSize - 4 || (k & 3) != 0)
                        return 0;
                    a = BinaryPrimitives.ReadUInt32LittleEndian(data[(int)k..]);
                    break;
                case 0x80: a = DataSize; break;   // ld #len
                case 0x81: x = DataSize; break;   // ldx #len
                case 0x00: a = k; break;          // ld #k
                case 0x01: x = k; break;          // ldx #k
                case 0x60: if (k >= 16) return 0; a = mem[(int)k]; break;   // ld M[k]
                case 0x61: if (k >= 16) return 0; x = mem[(int)k]; break;   // ldx M[k]
                case 0x02: if (k >= 16) return 0; mem[(int)k] = a; break;   // st M[k]
                case 0x03: if (k >= 16) return 0; mem[(int)k] = x; break;   // stx M[k]
                case 0x04: a += k; break;
                case 0x0c: a += x; break;
                case 0x14: a -= k; break;
                case 0x1c: a -= x; break;
                case 0x24: a *= k; break;
                case 0x2c: a *= x; break;
                case 0x34: if (k == 0) return 0; a /= k; break;
                case 0x3c: if (x == 0) return 0; a /= x; break;
                case 0x94: if (k == 0) return 0; a %= k; break;
                case 0x9c: if (x == 0) return 0; a %= x; break;
                case 0x44: a |= k; break;
                case 0x4c: a |= x; break;
                case 0x54: a &= k; break;
                case 0x5c: a &= x; break;
                case 0xa4: a ^= k; break;
                case 0xac: a ^= x; break;
                case 0x64: a = k >= 32 ? 0 : a << (int)k; break;
                case 0x6c: a = x >= 32 ? 0 : a << (int)x; break;
                case 0x74: a = k >= 32 ? 0 : a >> (int)k; break;
                case 0x7c: a = x >= 32 ? 0 : a >> (int)x; break;
                case 0x84: a = (uint)-(int)a; break;
                case 0x05: pc += (int)k; break;   // ja
                case 0x15: pc += a == k ? jt : jf; break;
                case 0x1d: pc += a == x ? jt : jf; break;
                case 0x25: pc += a > k ? jt : jf; break;
                case 0x2d: pc += a > x ? jt : jf; break;
                case 0x35: pc += a >= k ? jt : jf; break;
                case 0x3d: pc += a >= x ? jt : jf; break;
                case 0x45: pc += (a & k) != 0 ? jt : jf; break;
                case 0x4d: pc += (a & x) != 0 ? jt : jf; break;
                case 0x06: return k;   // ret #k
                case 0x16: return a;   // ret a
                case 0x07: x = a; break;   // tax
                case 0x87: a = x; break;   // txa
                default: return 0;
            }
        }
        return 0;   // ran off the end: the kernel never accepts such a filter
    }
}
