namespace Crisp.Resources.Memory;

/// <summary>vma_entry.status bits, with CRIU's values (criu/include/image.h VMA_AREA_*).</summary>
public static class VmaStatus
{
    public const uint Regular = 1u << 0, Stack = 1u << 1, Vsyscall = 1u << 2, Vdso = 1u << 3, Heap = 1u << 5,
        FilePrivate = 1u << 6, FileShared = 1u << 7, AnonShared = 1u << 8, AnonPrivate = 1u << 9,
        SysvIpc = 1u << 10, Socket = 1u << 11, Vvar = 1u << 12, AioRing = 1u << 13, Memfd = 1u << 14;

    public static bool Is(uint status, uint bits) => (status & bits) == bits;
}
