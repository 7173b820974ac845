using System.Runtime.InteropServices;

namespace Crisp.Linux;

/// <summary>memfd_create(2).</summary>
public static partial class Memfd
{
    public const uint MFD_CLOEXEC = 1, MFD_ALLOW_SEALING = 2, MFD_HUGETLB = 4, MFD_NOEXEC_SEAL = 8, MFD_EXEC = 0x10;

    [LibraryImport("libc", EntryPoint = "memfd_create", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int memfd_create(string name, uint flags);

    public static UnixFd Create(string name, uint flags = MFD_CLOEXEC)
        => new(SyscallException.Check(memfd_create(name, flags), $"memfd_create({name})"));
}
