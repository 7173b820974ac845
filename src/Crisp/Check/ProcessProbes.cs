using System.Runtime.InteropServices;
using Crisp.Compel;
using Crisp.Compel.Puppets;
using Crisp.Linux;
using Crisp.Linux.Proc;

namespace Crisp.Check;

/// <summary>A remote clone3 with set_tid in a seized child makes a grandchild with the PID we chose.</summary>
public sealed class Clone3SetTidProbe : IFeatureProbe
{
    public string Name => "clone3_set_tid";
    public string? CriuFeature => "clone3_set_tid";
    public bool Required => true;

    public ProbeResult Probe()
    {
        if (!Clone3.IsSupported())
            return ProbeResult.Missing("clone3: ENOSYS");
        using var child = ProbeChild.StartPuppet();
        // TRACEFORK: the grandchild arrives stopped and traced, so it never runs the int3 after the gadget.
        var process = child.Seize(extra: PtraceOptions.TraceFork);
        using var remote = ProbeChild.Remote(process);
        int size = Marshal.SizeOf<CloneArgs>();
        remote.PutOnScratch(new byte[size + 4]);
        ulong at = remote.ScratchData;
        long result = 0;
        for (int attempt = 0; attempt < 5; attempt++)
        {
            int wanted = FreePid();
            var args = new CloneArgs { ExitSignal = Signals.SIGCHLD, SetTid = at + (ulong)size, SetTidSize = 1 };
            var buf = new byte[size + 4];
            MemoryMarshal.Write(buf, in args);
            BitConverter.TryWriteBytes(buf.AsSpan(size), wanted);
            remote.PutOnScratch(buf);
            result = remote.Syscall(Sysno.clone3, (long)at, size);
            if (result > 0)
            {
                child.Adopt((int)result);
                return result == wanted
                    ? ProbeResult.Supported($"remote clone3 created PID {wanted} as asked")
                    : ProbeResult.Missing($"asked for PID {wanted}, got {result}");
            }
            if (result != -Errnos.EEXIST)
                break;
        }
        return ProbeResult.Missing($"remote clone3 with set_tid: {Errnos.Describe((int)-result)}");
    }

    /// <summary>A PID nobody uses now, high in the range so the kernel is unlikely to hand it out meanwhile.</summary>
    private static int FreePid()
    {
        int max = int.Parse(File.ReadAllText("/proc/sys/kernel/pid_max").Trim());
        for (int i = 0; i < 1000; i++)
        {
            int pid = Random.Shared.Next(Math.Max(300, max / 2), max);
            if (!Procfs.Host.Exists(pid))
                return pid;
        }
        throw new CrispException("no free PID found for the clone3 probe");
    }
}

/// <summary>pidfd_open on a child, and pidfd_getfd copying one of its fds into crisp.</summary>
public sealed class PidFdProbe : IFeatureProbe
{
    private const int ChildFd = 10;

    public string Name => "pidfd_getfd";
    public string? CriuFeature => "pidfd_store";
    public bool Required => true;

    public ProbeResult Probe()
    {
        using var devNull = File.OpenHandle("/dev/null", FileMode.Open, FileAccess.Read);
        using var child = ProbeChild.StartPuppet(new SpawnOptions { Fds = [((int)devNull.DangerousGetHandle(), ChildFd)] });
        using var pidfd = PidFd.Open(child.Pid);
        using var copy = pidfd.GetFd(ChildFd);
        string target = new FileInfo($"/proc/self/fd/{copy.Fd}").LinkTarget ?? "?";
        return target == "/dev/null"
            ? ProbeResult.Supported($"pidfd_open, then pidfd_getfd copied the child's fd {ChildFd} ({target})")
            : ProbeResult.Missing($"pidfd_getfd returned {target}, expected /dev/null");
    }
}

/// <summary>process_vm_readv of the child's ELF header.</summary>
public sealed class ProcessVmReadvProbe : IFeatureProbe
{
    public string Name => "process_vm_readv";
    public string? CriuFeature => null;
    public bool Required => true;

    public ProbeResult Probe()
    {
        using var child = ProbeChild.StartPuppet();
        var got = new byte[16];
        ProcessVm.ReadExactly(child.Pid, PuppetElf.BaseAddress, got);
        return got.AsSpan().SequenceEqual(PuppetElf.Build().AsSpan(0, 16))
            ? ProbeResult.Supported("read the child's ELF header")
            : ProbeResult.Missing("bytes read differ from the child's image");
    }
}

/// <summary>/proc/PID/map_files links can be read and opened (CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN).</summary>
public sealed class MapFilesProbe : IFeatureProbe
{
    public string Name => "map_files";
    public string? CriuFeature => null;
    public bool Required => true;

    public ProbeResult Probe()
    {
        using var child = ProbeChild.StartPuppet();
        string range = File.ReadLines(Procfs.Host.Path(child.Pid, "maps")).First().Split(' ')[0];
        // map_files names are "%lx-%lx": no leading zeros, unlike maps.
        var ends = range.Split('-');
        range = $"{Convert.ToUInt64(ends[0], 16):x}-{Convert.ToUInt64(ends[1], 16):x}";
        string link = Procfs.Host.Path(child.Pid, $"map_files/{range}");
        string target = new FileInfo(link).LinkTarget ?? "?";
        using (File.OpenHandle(link, FileMode.Open, FileAccess.Read))
        {
        }
        return ProbeResult.Supported($"read and opened map_files/{range} → {target}");
    }
}

/// <summary>PR_SET_MM_MAP_SIZE here, and a real PR_SET_MM_MAP run inside a child with its own current values.</summary>
public sealed class MmMapProbe : IFeatureProbe
{
    public string Name => "prctl_mm_map";
    public string? CriuFeature => null;
    public bool Required => true;

    public ProbeResult Probe()
    {
        uint size = Prctl.GetMmMapSize();
        int ours = Marshal.SizeOf<PrctlMmMap>();
        if (size != ours)
            return ProbeResult.Missing($"kernel's struct prctl_mm_map is {size} bytes, crisp's {ours}");

        using var child = ProbeChild.StartPuppet();
        var process = child.Seize();
        using var remote = ProbeChild.Remote(process);
        var stat = ProcStat.Read(child.Pid);
        byte[] auxv = File.ReadAllBytes(Procfs.Host.Path(child.Pid, "auxv"));
        long brk = remote.Syscall(Sysno.brk, 0);
        remote.PutOnScratch(new byte[ours + auxv.Length]);
        ulong at = remote.ScratchData;
        var map = new PrctlMmMap
        {
            StartCode = stat.StartCode, EndCode = stat.EndCode, StartData = stat.StartData, EndData = stat.EndData,
            StartBrk = stat.StartBrk, Brk = (ulong)brk, StartStack = stat.StartStack,
            ArgStart = stat.ArgStart, ArgEnd = stat.ArgEnd, EnvStart = stat.EnvStart, EnvEnd = stat.EnvEnd,
            Auxv = at + (ulong)ours, AuxvSize = (uint)auxv.Length, ExeFd = uint.MaxValue,
        };
        var buf = new byte[ours + auxv.Length];
        MemoryMarshal.Write(buf, in map);
        auxv.CopyTo(buf, ours);
        remote.PutOnScratch(buf);
        long r = remote.Syscall(Sysno.prctl, Prctl.PR_SET_MM, Prctl.PR_SET_MM_MAP, (long)at, ours);
        return r == 0
            ? ProbeResult.Supported($"PR_SET_MM_MAP_SIZE {size}; PR_SET_MM_MAP with a child's own values ok")
            : ProbeResult.Missing($"remote prctl(PR_SET_MM_MAP): {Errnos.Describe((int)-r)}");
    }
}
