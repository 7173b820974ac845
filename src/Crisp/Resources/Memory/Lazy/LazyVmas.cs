using Crisp.Images.Proto;
using Crisp.Linux;

namespace Crisp.Resources.Memory.Lazy;

/// <summary>Which memory is restored lazily: private anonymous VMAs that are not locked, huge-page, vdso, vvar,
/// vsyscall or AIO rings (CRIU's vma_entry_can_be_lazy). A dump --lazy-pages records their pages PE_LAZY; a restore
/// --lazy-pages maps them empty, registers them with a userfaultfd (MODE_MISSING) and leaves every page of them —
/// stored or lazy — to the lazy-pages daemon.</summary>
public static class LazyVmas
{
    public static bool CanBeLazy(vma_entry e) =>
        VmaStatus.Is(e.Status, VmaStatus.Regular) && VmaStatus.Is(e.Status, VmaStatus.AnonPrivate)
        && (e.Flags & Mman.MAP_ANONYMOUS) != 0 && (e.Flags & Mman.MAP_PRIVATE) != 0
        && (e.Flags & (Mman.MAP_LOCKED | Mman.MAP_HUGETLB)) == 0
        && (e.Status & (VmaStatus.Vdso | VmaStatus.Vvar | VmaStatus.Vsyscall | VmaStatus.AioRing)) == 0;
}
