using System.Runtime.Intrinsics.X86;

namespace Crisp.Resources.Registers;

/// <summary>Where each XSAVE state component lives in the standard (non-compacted) XSAVE area that
/// PTRACE_GETREGSET(NT_X86_XSTATE) uses, as this CPU reports it (CPUID leaf 0xD).</summary>
public static class XsaveLayout
{
    public const int LegacySize = 512, HeaderOffset = 512, HeaderSize = 64;

    /// <summary>Component numbers CRIU's image carries: AVX, MPX bound regs/CSR, AVX-512 opmask,
    /// ZMM_Hi256, Hi16_ZMM, PKRU.</summary>
    public const int Ymm = 2, BndRegs = 3, BndCsr = 4, Opmask = 5, ZmmHi256 = 6, Hi16Zmm = 7, Pkru = 9;

    /// <summary>(offset, size) of component <paramref name="n"/>, or (0, 0) when the CPU lacks it.</summary>
    public static (int Offset, int Size) Component(int n)
    {
        if (!X86Base.IsSupported)
            return (0, 0);
        var (eax, ebx, _, _) = X86Base.CpuId(0xD, n);
        return eax == 0 ? (0, 0) : (ebx, eax);
    }
}
