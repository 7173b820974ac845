namespace Crisp.Linux;

/// <summary>Layout of the FPU/SSE/AVX state a ptrace-stopped thread gives (SeizedThread.GetXstate): the XSAVE
/// area (NT_X86_XSTATE, standard non-compacted layout) and the legacy 512-byte FXSAVE area (NT_PRFPREG).</summary>
public static class Xsave
{
    public const int FxsaveSize = 512;

    /// <summary>Offset of YMM_Hi128 (upper halves of ymm0-15) in the standard XSAVE layout.</summary>
    public const int YmmHiOffset = 576;

    /// <summary>Offset of xmm0 in the legacy (FXSAVE) region.</summary>
    public const int XmmOffset = 160;
}
