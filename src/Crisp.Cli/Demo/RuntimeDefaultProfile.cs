using System.Runtime.InteropServices;
using Crisp.Linux;

namespace Crisp.Cli.Demo;

/// <summary>Seccomp programs like a container runtime's default profile: an allowlist of x86-64 syscalls
/// (everything except what the runtimes deny: ptrace, mount, bpf, kexec, reboot, unshare, setns, …)
/// with default ERRNO(EPERM); and a second, LOG-flagged filter that makes one ordinary syscall
/// (getpriority) fail with a distinctive errno, so a restored task shows its filters still work.</summary>
public static class RuntimeDefaultProfile
{
    public const int GetpriorityErrno = 133;   // EHWPOISON
    public const long Getpriority = 140;

    private const uint AuditArchX8664 = 0xC000003E;
    private const ushort LdW = 0x20, JeqK = 0x15, JgeK = 0x35, Ret = 0x06;
    private const uint EPERM = 1;

    /// <summary>Syscalls the runtimes' default profiles refuse (x86-64 numbers).</summary>
    private static readonly HashSet<int> Denied =
    [
        101 /* ptrace */, 134 /* uselib */, 135 /* personality */, 136 /* ustat */, 139 /* sysfs */,
        153 /* vhangup */, 154 /* modify_ldt */, 155 /* pivot_root */, 156 /* _sysctl */, 159 /* adjtimex */,
        163 /* acct */, 164 /* settimeofday */, 165 /* mount */, 166 /* umount2 */, 167 /* swapon */,
        168 /* swapoff */, 169 /* reboot */, 172 /* iopl */, 173 /* ioperm */, 174 /* create_module */,
        175 /* init_module */, 176 /* delete_module */, 177 /* get_kernel_syms */, 178 /* query_module */,
        179 /* quotactl */, 180 /* nfsservctl */, 212 /* lookup_dcookie */, 237 /* mbind */,
        238 /* set_mempolicy */, 239 /* get_mempolicy */, 246 /* kexec_load */, 248 /* add_key */,
        249 /* request_key */, 250 /* keyctl */, 256 /* migrate_pages */, 272 /* unshare */,
        279 /* move_pages */, 298 /* perf_event_open */, 303 /* name_to_handle_at */,
        304 /* open_by_handle_at */, 305 /* clock_adjtime */, 308 /* setns */, 310 /* process_vm_readv */,
        311 /* process_vm_writev */, 312 /* kcmp */, 313 /* finit_module */, 320 /* kexec_file_load */,
        321 /* bpf */, 323 /* userfaultfd */, 425 /* io_uring_setup */, 426 /* io_uring_enter */,
        427 /* io_uring_register */, 428 /* open_tree */, 429 /* move_mount */, 430 /* fsopen */,
        431 /* fsconfig */, 432 /* fsmount */, 433 /* fspick */, 442 /* mount_setattr */,
    ];

    /// <summary>x86-64 syscall numbers 0..334 and 424..462 exist; every one not denied is allowed.</summary>
    public static IEnumerable<int> Allowed =>
        Enumerable.Range(0, 335).Concat(Enumerable.Range(424, 39)).Where(n => !Denied.Contains(n));

    public static byte[] Allowlist()
    {
        var p = new List<SockFilter>
        {
            new(LdW, 0, 0, 4),                                   // arch
            new(JeqK, 1, 0, AuditArchX8664),
            SockFilter.Return(Seccomp.SECCOMP_RET_KILL_PROCESS),
            new(LdW, 0, 0, 0),                                   // nr
            new(JgeK, 0, 1, 0x40000000),                         // x32 ABI: refuse
            SockFilter.Return(Seccomp.SECCOMP_RET_ERRNO | EPERM),
        };
        foreach (int nr in Allowed)
        {
            p.Add(new(JeqK, 0, 1, (uint)nr));
            p.Add(SockFilter.Return(Seccomp.SECCOMP_RET_ALLOW));
        }
        p.Add(SockFilter.Return(Seccomp.SECCOMP_RET_ERRNO | EPERM));
        return MemoryMarshal.AsBytes(p.ToArray().AsSpan()).ToArray();
    }

    public static byte[] GetpriorityMarker()
    {
        SockFilter[] p =
        [
            new(LdW, 0, 0, 0),
            new(JeqK, 0, 1, (uint)Getpriority),
            SockFilter.Return(Seccomp.SECCOMP_RET_ERRNO | GetpriorityErrno),
            SockFilter.Return(Seccomp.SECCOMP_RET_ALLOW),
        ];
        return MemoryMarshal.AsBytes(p.AsSpan()).ToArray();
    }
}
