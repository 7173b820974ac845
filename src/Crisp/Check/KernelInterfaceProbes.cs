using System.Runtime.InteropServices;
using Crisp.Linux;

namespace Crisp.Check;

/// <summary>/proc/PID/fdinfo shows mnt_id (which mount an open file is on).</summary>
public sealed class MntIdProbe : IFeatureProbe
{
    public string Name => "mnt_id";
    public string? CriuFeature => "mnt_id";
    public bool Required => false;

    public ProbeResult Probe()
    {
        using var fd = FileIo.Open("/proc/self/status", FileIo.O_RDONLY);
        string? line = File.ReadLines($"/proc/self/fdinfo/{fd.Fd}").FirstOrDefault(l => l.StartsWith("mnt_id:", StringComparison.Ordinal));
        return line is null ? ProbeResult.Missing("fdinfo has no mnt_id line") : ProbeResult.Supported($"fdinfo {line.Replace('\t', ' ')}");
    }
}

/// <summary>/proc/PID/fdinfo shows the file locks held through a descriptor ("lock:" lines).</summary>
public sealed class FdinfoLockProbe : IFeatureProbe
{
    private const int LOCK_EX = 2;

    public string Name => "fdinfo_lock";
    public string? CriuFeature => "fdinfo_lock";
    public bool Required => false;

    public ProbeResult Probe()
    {
        using var fd = Memfd.Create("crisp-check-lock");
        long r = RawSyscall.TryCall(Sysno.flock, fd.Fd, LOCK_EX);
        if (r < 0)
            return ProbeResult.Missing($"flock: {Errnos.Describe((int)-r)}");
        string? line = File.ReadLines($"/proc/self/fdinfo/{fd.Fd}").FirstOrDefault(l => l.StartsWith("lock:", StringComparison.Ordinal));
        return line is null ? ProbeResult.Missing("a flock()ed fd shows no lock: line in fdinfo")
            : ProbeResult.Supported($"fdinfo {line.Replace('\t', ' ').Trim()}");
    }
}

/// <summary>openat2(2) with RESOLVE_* flags.</summary>
public sealed unsafe class Openat2Probe : IFeatureProbe
{
    private const long AT_FDCWD = -100;
    private const ulong RESOLVE_NO_MAGICLINKS = 0x02;

    public string Name => "openat2";
    public string? CriuFeature => "openat2";
    public bool Required => false;

    public ProbeResult Probe()
    {
        // struct open_how { u64 flags; u64 mode; u64 resolve; }
        ulong* how = stackalloc ulong[3] { (ulong)(FileIo.O_RDONLY | FileIo.O_CLOEXEC), 0, RESOLVE_NO_MAGICLINKS };
        nint path = Marshal.StringToCoTaskMemUTF8("/proc/self/status");
        try
        {
            long fd = RawSyscall.TryCall(Sysno.openat2, AT_FDCWD, path, (long)how, 24);
            if (fd < 0)
                return ProbeResult.Missing($"openat2: {Errnos.Describe((int)-fd)}");
            RawSyscall.TryCall(Sysno.close, fd);
            return ProbeResult.Supported("openat2 with RESOLVE_NO_MAGICLINKS opened /proc/self/status");
        }
        finally
        {
            Marshal.FreeCoTaskMem(path);
        }
    }
}

/// <summary>/proc/PID/status lists a task's PID in every nested PID namespace (NSpid).</summary>
public sealed class NsPidProbe : IFeatureProbe
{
    public string Name => "ns_pid";
    public string? CriuFeature => "ns_pid";
    public bool Required => false;

    public ProbeResult Probe()
    {
        string? line = File.ReadLines("/proc/self/status").FirstOrDefault(l => l.StartsWith("NSpid:", StringComparison.Ordinal));
        return line is null ? ProbeResult.Missing("/proc/self/status has no NSpid line") : ProbeResult.Supported(line.Replace('\t', ' '));
    }
}

/// <summary>A namespace kind exists in this kernel: /proc/self/ns/KIND is there.</summary>
public sealed class NamespaceProbe(string criuName, string kind) : IFeatureProbe
{
    public string Name => criuName;
    public string? CriuFeature => criuName;
    public bool Required => false;

    public ProbeResult Probe() => File.Exists($"/proc/self/ns/{kind}") || Directory.Exists($"/proc/self/ns/{kind}")
        ? ProbeResult.Supported($"/proc/self/ns/{kind} → {new FileInfo($"/proc/self/ns/{kind}").LinkTarget}")
        : ProbeResult.Missing($"no /proc/self/ns/{kind}");
}

/// <summary>memfd_create(MFD_HUGETLB): memfds backed by huge pages can be made (and so restored).</summary>
public sealed class MemfdHugetlbProbe : IFeatureProbe
{
    public string Name => "memfd_hugetlb";
    public string? CriuFeature => "memfd_hugetlb";
    public bool Required => false;

    public ProbeResult Probe()
    {
        try
        {
            using var fd = Memfd.Create("crisp-check-huge", Memfd.MFD_CLOEXEC | Memfd.MFD_HUGETLB);
            return ProbeResult.Supported("memfd_create(MFD_HUGETLB) ok");
        }
        catch (SyscallException e)
        {
            return ProbeResult.Missing($"memfd_create(MFD_HUGETLB): {e.Message}");
        }
    }
}
