using System.Text;
using Crisp.Compel;
using Crisp.Compel.Puppets;
using Crisp.Linux;

namespace Crisp.Check;

/// <summary>userns: user namespaces exist and PR_SET_MM_MAP_SIZE answers (how mm fields are restored in one).</summary>
public sealed class UsernsProbe() : CriuProbe("userns")
{
    protected override ProbeResult Check()
    {
        if (!File.Exists("/proc/self/ns/user"))
            return ProbeResult.Missing("no /proc/self/ns/user");
        try
        {
            return ProbeResult.Supported($"/proc/self/ns/user present; PR_SET_MM_MAP_SIZE {Prctl.GetMmMapSize()}");
        }
        catch (SyscallException e)
        {
            return ProbeResult.Missing($"prctl(PR_SET_MM_MAP_SIZE): {e.Message}");
        }
    }
}

/// <summary>loginuid: a task's loginuid can be unset and set again (restore needs both). Done on a
/// throwaway thread's own /proc/thread-self/loginuid, so crisp's value never changes.</summary>
public sealed class LoginuidProbe() : CriuProbe("loginuid")
{
    private const string Path = "/proc/thread-self/loginuid";

    protected override ProbeResult Check() => ProbeSys.OnThrowawayThread(() =>
    {
        if (!File.Exists(Path))
            return ProbeResult.Missing("no /proc/PID/loginuid (kernel without CONFIG_AUDITSYSCALL)");
        string saved = File.ReadAllText(Path).Trim();
        if (Write(uint.MaxValue.ToString()) is { } unset)
            return ProbeResult.Missing($"loginuid cannot be unset: {unset}");
        if (Write(saved) is { } back)
            return ProbeResult.Missing($"loginuid cannot be set back to {saved}: {back}");
        return ProbeResult.Supported($"loginuid {saved} unset and set again");
    });

    private static string? Write(string value)
    {
        using var fd = FileIo.Open(Path, FileIo.O_WRONLY | FileIo.O_CLOEXEC);
        try
        {
            FileIo.WriteExactly(fd.Fd, Encoding.ASCII.GetBytes(value));
            return null;
        }
        catch (SyscallException e)
        {
            return e.Message;
        }
    }
}

/// <summary>kcmp_epoll: kcmp(KCMP_EPOLL_TFD) finds a file registered in an epoll instance.</summary>
public sealed unsafe class KcmpEpollProbe() : CriuProbe("kcmp_epoll")
{
    private const int KCMP_EPOLL_TFD = 7, EPOLL_CTL_ADD = 1, EPOLLIN = 1;

    protected override ProbeResult Check()
    {
        using var epoll = new UnixFd((int)RawSyscall.Call("epoll_create1", Sysno.epoll_create1, FileIo.O_CLOEXEC));
        int* pipe = stackalloc int[2];
        RawSyscall.Call("pipe2", Sysno.pipe2, (long)pipe, FileIo.O_CLOEXEC);
        using var read = new UnixFd(pipe[0]);
        using var write = new UnixFd(pipe[1]);
        byte* ev = stackalloc byte[12];   // packed struct epoll_event { u32 events; u64 data; }
        new Span<byte>(ev, 12).Fill(0xff);
        *(uint*)ev = EPOLLIN;
        RawSyscall.Call("epoll_ctl", Sysno.epoll_ctl, epoll.Fd, EPOLL_CTL_ADD, read.Fd, (long)ev);
        uint* slot = stackalloc uint[3] { (uint)epoll.Fd, (uint)read.Fd, 0 };  // kcmp_epoll_slot { efd, tfd, toff }
        int pid = Environment.ProcessId;
        long r = RawSyscall.TryCall(Sysno.kcmp, pid, pid, KCMP_EPOLL_TFD, read.Fd, (long)slot);
        return r == 0 ? ProbeResult.Supported("kcmp(KCMP_EPOLL_TFD) matched a pipe registered in an epoll")
            : ProbeResult.Missing(r < 0 ? $"kcmp(KCMP_EPOLL_TFD): {ProbeSys.Err(r)}" : $"kcmp(KCMP_EPOLL_TFD) says the files differ ({r})");
    }
}

/// <summary>timer_cr_ids: prctl(PR_TIMER_CREATE_RESTORE_IDS) exists, so POSIX timers get their ids back.</summary>
public sealed class TimerCrIdsProbe() : CriuProbe("timer_cr_ids")
{
    public const int PR_TIMER_CREATE_RESTORE_IDS = 77, PR_TIMER_CREATE_RESTORE_IDS_GET = 2;

    protected override ProbeResult Check()
    {
        long r = RawSyscall.TryCall(Sysno.prctl, PR_TIMER_CREATE_RESTORE_IDS, PR_TIMER_CREATE_RESTORE_IDS_GET);
        return r >= 0 ? ProbeResult.Supported($"prctl(PR_TIMER_CREATE_RESTORE_IDS, GET) = {r}")
            : ProbeResult.Missing($"prctl(PR_TIMER_CREATE_RESTORE_IDS, GET): {ProbeSys.Err(r)}");
    }
}

/// <summary>apparmor_stacking: AppArmor with namespace stacking (features/domain stack "yes", version ≥ 1.2).</summary>
public sealed class AppArmorStackingProbe() : CriuProbe("apparmor_stacking")
{
    private const string Root = "/sys/kernel/security/apparmor";

    protected override ProbeResult Check()
    {
        if (!Directory.Exists(Root))
            return ProbeResult.Missing($"AppArmor is not active (no {Root})");
        string stack = Read("features/domain/stack");
        if (stack != "yes")
            return ProbeResult.Missing($"AppArmor domain stacking: {(stack.Length == 0 ? "not reported" : stack)}");
        string version = Read("features/domain/version");
        var parts = version.Split('.');
        if (parts.Length < 2 || !int.TryParse(parts[0], out int major) || !int.TryParse(parts[1], out int minor))
            return ProbeResult.Missing($"AppArmor domain version unreadable: '{version}'");
        return major > 1 || (major == 1 && minor >= 2)
            ? ProbeResult.Supported($"AppArmor stacking, domain version {version}")
            : ProbeResult.Missing($"AppArmor domain version {version} (1.2 needed)");
    }

    private static string Read(string name)
    {
        string path = System.IO.Path.Combine(Root, name);
        return File.Exists(path) ? File.ReadAllText(path).Trim() : "";
    }
}

/// <summary>ARCH_MAP_VDSO_32 (arch_prctl): the kernel can map a 32-bit vDSO where a restored task had it.</summary>
internal static class VdsoMapping
{
    private const int ARCH_MAP_VDSO_32 = 0x2002;

    /// <summary>Asked of a process that has a vDSO the call is refused with EEXIST when the kernel has it
    /// (EINVAL when not) and maps nothing. Without a vDSO here, a puppet child is asked instead.</summary>
    public static ProbeResult Can32()
    {
        long r;
        if (File.ReadLines("/proc/self/maps").Any(l => l.EndsWith("[vdso]", StringComparison.Ordinal)))
            r = RawSyscall.TryCall(Sysno.arch_prctl, ARCH_MAP_VDSO_32, 0);
        else
        {
            using var child = ProbeChild.StartPuppet();
            var process = child.Seize();
            using var remote = ProbeChild.Remote(process);
            r = remote.Syscall(Sysno.arch_prctl, ARCH_MAP_VDSO_32, 0);
        }
        return r == 0 || r == -Errnos.EEXIST
            ? ProbeResult.Supported("arch_prctl(ARCH_MAP_VDSO_32) is there")
            : ProbeResult.Missing($"arch_prctl(ARCH_MAP_VDSO_32): {ProbeSys.Err(r)} (no CONFIG_IA32_EMULATION or CONFIG_CHECKPOINT_RESTORE)");
    }
}

/// <summary>can_map_vdso: see <see cref="VdsoMapping"/>.</summary>
public sealed class CanMapVdsoProbe() : CriuProbe("can_map_vdso")
{
    protected override ProbeResult Check() => VdsoMapping.Can32();
}

/// <summary>compat_cr: 32-bit (ia32) tasks can be checkpointed on this x86-64 kernel, as CRIU judges it:
/// the 32-bit vDSO can be mapped and ia32 emulation is on (the 32-bit mmap bug CRIU also tests was
/// fixed in 4.12). crisp itself only dumps 64-bit tasks.</summary>
public sealed class CompatCrProbe() : CriuProbe("compat_cr")
{
    protected override ProbeResult Check()
    {
        var vdso = VdsoMapping.Can32();
        if (!vdso.Ok)
            return vdso;
        string cmdline = File.Exists("/proc/cmdline") ? File.ReadAllText("/proc/cmdline") : "";
        var off = cmdline.Split(' ', StringSplitOptions.RemoveEmptyEntries)
            .FirstOrDefault(a => a is "ia32_emulation=0" or "ia32_emulation=false" or "ia32_emulation=off" or "ia32_emulation=n");
        if (off is not null)
            return ProbeResult.Missing($"ia32 emulation turned off on the kernel command line ({off})");
        string config = $"/boot/config-{File.ReadAllText("/proc/sys/kernel/osrelease").Trim()}";
        if (!cmdline.Contains("ia32_emulation=", StringComparison.Ordinal) && File.Exists(config)
            && File.ReadLines(config).Contains("CONFIG_IA32_EMULATION_DEFAULT_DISABLED=y"))
            return ProbeResult.Missing("ia32 emulation is off by default in this kernel (CONFIG_IA32_EMULATION_DEFAULT_DISABLED)");
        return ProbeResult.Supported("ARCH_MAP_VDSO_32 there and ia32 emulation on (crisp itself dumps only 64-bit tasks)");
    }
}

/// <summary>breakpoints: a hardware execute breakpoint (DR0/DR7 by PTRACE_POKEUSER) stops a traced child
/// with SIGTRAP; some hypervisors do not virtualize debug registers.</summary>
public sealed class BreakpointsProbe() : CriuProbe("breakpoints")
{
    protected override ProbeResult Check()
    {
        using var child = ProbeChild.StartPuppet();
        var process = child.Seize();
        // Stopped in its nanosleep: resume at the next instruction (no syscall restart) and put the
        // breakpoint one instruction further, on exit_group's "mov eax, 231". Without a working
        // breakpoint the child simply exits.
        var (status, rip) = HardwareBreakpoint.RunTo(process.Leader, PuppetElf.EntryAddress + 16, PuppetElf.EntryAddress + 21);
        // An event stop (e.g. PTRACE_EVENT_EXIT) is also a SIGTRAP stop, but not the breakpoint's.
        if (status.Stopped && status.StopSignal == Signals.SIGTRAP && status.Event == 0)
        {
            return rip == PuppetElf.EntryAddress + 21
                ? ProbeResult.Supported("a DR0 execute breakpoint stopped a traced child with SIGTRAP")
                : ProbeResult.Missing($"SIGTRAP at 0x{rip:x}, breakpoint was at 0x{PuppetElf.EntryAddress + 21:x}");
        }
        return ProbeResult.Missing(status.Dead || status.Event != 0
            ? "the child ran past a hardware breakpoint (debug registers not virtualized?)"
            : $"child stopped with signal {status.StopSignal} instead of SIGTRAP");
    }
}
