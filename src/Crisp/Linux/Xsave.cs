namespace Crisp.Linux;

/// <summary>FPU/SSE/AVX state of a ptrace-stopped thread: the XSAVE area (NT_X86_XSTATE, standard
/// non-compacted layout) and the legacy 512-byte FXSAVE area (NT_PRFPREG).</summary>
public static class Xsave
{
    public const int FxsaveSize = 512;

    /// <summary>Offset of YMM_Hi128 (upper halves of ymm0-15) in the standard XSAVE layout.</summary>
    public const int YmmHiOffset = 576;

    /// <summary>Offset of xmm0 in the legacy (FXSAVE) region.</summary>
    public const int XmmOffset = 160;

    // Bigger than any xstate today (AMX is ~11 KiB); the kernel shortens iov_len to the real size.
    private const int ProbeSize = 64 * 1024;

    /// <summary>The whole XSAVE area, exactly as long as the kernel says it is.</summary>
    public static byte[] GetXstate(int tid)
    {
        var buffer = new byte[ProbeSize];
        int length = Ptrace.GetRegSet(tid, NtType.X86_XSTATE, buffer);
        return buffer.AsSpan(0, length).ToArray();
    }

    public static void SetXstate(int tid, ReadOnlySpan<byte> area) => Ptrace.SetRegSet(tid, NtType.X86_XSTATE, area);

    public static byte[] GetFpregs(int tid)
    {
        var buffer = new byte[FxsaveSize];
        int length = Ptrace.GetRegSet(tid, NtType.PRFPREG, buffer);
        return buffer.AsSpan(0, length).ToArray();
    }

    public static void SetFpregs(int tid, ReadOnlySpan<byte> area) => Ptrace.SetRegSet(tid, NtType.PRFPREG, area);
}
