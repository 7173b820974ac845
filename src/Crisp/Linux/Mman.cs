using System.Runtime.InteropServices;

namespace Crisp.Linux;

/// <summary>mmap(2), munmap(2), mprotect(2), madvise(2) on our own address space.</summary>
public static partial class Mman
{
    public const int PROT_NONE = 0, PROT_READ = 1, PROT_WRITE = 2, PROT_EXEC = 4,
        PROT_GROWSDOWN = 0x01000000, PROT_GROWSUP = 0x02000000;

    public const int MAP_SHARED = 1, MAP_PRIVATE = 2, MAP_SHARED_VALIDATE = 3, MAP_FIXED = 0x10,
        MAP_ANONYMOUS = 0x20, MAP_32BIT = 0x40, MAP_GROWSDOWN = 0x100, MAP_DENYWRITE = 0x800,
        MAP_EXECUTABLE = 0x1000, MAP_LOCKED = 0x2000, MAP_NORESERVE = 0x4000, MAP_POPULATE = 0x8000,
        MAP_NONBLOCK = 0x10000, MAP_STACK = 0x20000, MAP_HUGETLB = 0x40000, MAP_SYNC = 0x80000,
        MAP_FIXED_NOREPLACE = 0x100000;

    public const int MADV_NORMAL = 0, MADV_RANDOM = 1, MADV_SEQUENTIAL = 2, MADV_WILLNEED = 3,
        MADV_DONTNEED = 4, MADV_FREE = 8, MADV_REMOVE = 9, MADV_DONTFORK = 10, MADV_DOFORK = 11,
        MADV_MERGEABLE = 12, MADV_UNMERGEABLE = 13, MADV_HUGEPAGE = 14, MADV_NOHUGEPAGE = 15,
        MADV_DONTDUMP = 16, MADV_DODUMP = 17, MADV_WIPEONFORK = 18, MADV_KEEPONFORK = 19,
        MADV_COLD = 20, MADV_PAGEOUT = 21, MADV_POPULATE_READ = 22, MADV_POPULATE_WRITE = 23, MADV_COLLAPSE = 25;

    public const int PageSize = 4096;

    [LibraryImport("libc", EntryPoint = "mmap", SetLastError = true)]
    private static partial nint mmap(nint addr, nuint length, int prot, int flags, int fd, long offset);

    [LibraryImport("libc", EntryPoint = "munmap", SetLastError = true)]
    private static partial int munmap(nint addr, nuint length);

    [LibraryImport("libc", EntryPoint = "mprotect", SetLastError = true)]
    private static partial int mprotect(nint addr, nuint length, int prot);

    [LibraryImport("libc", EntryPoint = "madvise", SetLastError = true)]
    private static partial int madvise(nint addr, nuint length, int advice);

    public static nint Map(nint address, ulong length, int prot, int flags, int fd = -1, long offset = 0)
    {
        nint p = mmap(address, (nuint)length, prot, flags, fd, offset);
        if (p == -1)
            throw new SyscallException("mmap", Marshal.GetLastPInvokeError());
        return p;
    }

    public static void Unmap(nint address, ulong length) => SyscallException.Check(munmap(address, (nuint)length), "munmap");
    public static void Protect(nint address, ulong length, int prot) => SyscallException.Check(mprotect(address, (nuint)length, prot), "mprotect");
    public static void Advise(nint address, ulong length, int advice) => SyscallException.Check(madvise(address, (nuint)length, advice), $"madvise({advice})");
    public static bool TryProtect(nint address, ulong length, int prot) => mprotect(address, (nuint)length, prot) == 0;
    public static bool TryAdvise(nint address, ulong length, int advice) => madvise(address, (nuint)length, advice) == 0;
}
