namespace Crisp.Linux;

/// <summary>kcmp(2): do two processes share a kernel object? Used to find shared files, mm, fs, …</summary>
public static class Kcmp
{
    public const int KCMP_FILE = 0, KCMP_VM = 1, KCMP_FILES = 2, KCMP_FS = 3, KCMP_SIGHAND = 4,
        KCMP_IO = 5, KCMP_SYSVSEM = 6, KCMP_EPOLL_TFD = 7;

    /// <summary>0 when equal; 1 or 2 orders the objects (less/greater) so callers can sort; 3 when merely different.</summary>
    public static int Compare(int pid1, int pid2, int type, ulong idx1 = 0, ulong idx2 = 0)
        => (int)RawSyscall.Call("kcmp", Sysno.kcmp, pid1, pid2, type, (long)idx1, (long)idx2);

    /// <summary>Do fd1 in pid1 and fd2 in pid2 refer to the same open file description?</summary>
    public static bool SameFile(int pid1, int fd1, int pid2, int fd2)
        => Compare(pid1, pid2, KCMP_FILE, (ulong)fd1, (ulong)fd2) == 0;
}
