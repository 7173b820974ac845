using Crisp.Compel;
using Crisp.Linux;

namespace Crisp.Check;

/// <summary>PTRACE_SEIZE + PTRACE_INTERRUPT on a child, then one remote syscall through it.</summary>
public sealed class PtraceSeizeProbe : IFeatureProbe
{
    public string Name => "ptrace_seize";
    public string? CriuFeature => null;
    public bool Required => true;

    public ProbeResult Probe()
    {
        using var child = ProbeChild.StartPuppet();
        var process = child.Seize();
        long pid;
        using (var remote = ProbeChild.Remote(process))
            pid = remote.Getpid();
        process.Detach();
        return pid == child.Pid
            ? ProbeResult.Supported("seized and interrupted a child, remote getpid ok")
            : ProbeResult.Missing($"remote getpid in the seized child returned {pid}, not {child.Pid}");
    }
}

/// <summary>A real seize with PTRACE_O_SUSPEND_SECCOMP (needs CAP_SYS_ADMIN; EINVAL on old kernels).</summary>
public sealed class SuspendSeccompProbe : IFeatureProbe
{
    public string Name => "ptrace_suspend_seccomp";
    public string? CriuFeature => "seccomp_suspend";
    public bool Required => true;

    public ProbeResult Probe()
    {
        using var child = ProbeChild.StartPuppet();
        try
        {
            var process = child.Seize(SeccompSuspend.Always);
            bool set = process.Leader.Options.HasFlag(PtraceOptions.SuspendSeccomp);
            process.Detach();
            return set
                ? ProbeResult.Supported("seized a child with PTRACE_O_SUSPEND_SECCOMP")
                : ProbeResult.Missing("seize did not keep PTRACE_O_SUSPEND_SECCOMP");
        }
        catch (SyscallException e)
        {
            return ProbeResult.Missing(e.Message);
        }
    }
}

/// <summary>Installs an allow-all seccomp filter inside a seized puppet by remote syscalls.</summary>
internal static class ProbeSeccompFilter
{
    public static readonly SockFilter[] AllowAll = [SockFilter.Return(Seccomp.SECCOMP_RET_ALLOW)];

    public static byte[] Bytes => System.Runtime.InteropServices.MemoryMarshal.AsBytes(AllowAll.AsSpan()).ToArray();

    public static void Install(RemoteTask remote)
    {
        long r = remote.Syscall(Sysno.prctl, Prctl.PR_SET_NO_NEW_PRIVS, 1);
        if (r < 0)
            throw new SyscallException("remote prctl(PR_SET_NO_NEW_PRIVS)", (int)-r);
        // struct sock_fprog { u16 len; sock_filter *filter; } followed by the program itself.
        remote.PutOnScratch(new byte[16]);
        ulong at = remote.ScratchData;
        var buf = new byte[16 + Bytes.Length];
        BitConverter.TryWriteBytes(buf.AsSpan(0), (ushort)AllowAll.Length);
        BitConverter.TryWriteBytes(buf.AsSpan(8), at + 16);
        Bytes.CopyTo(buf, 16);
        remote.PutOnScratch(buf);
        r = remote.Syscall(Sysno.seccomp, Seccomp.SECCOMP_SET_MODE_FILTER, 0, (long)at);
        if (r < 0)
            throw new SyscallException("remote seccomp(SECCOMP_SET_MODE_FILTER)", (int)-r);
    }

    /// <summary>Runs <paramref name="read"/> against a puppet that has the filter.</summary>
    public static ProbeResult WithFilteredChild(Func<SeizedThread, ProbeResult> read)
    {
        using var child = ProbeChild.StartPuppet();
        var process = child.Seize();
        using (var remote = ProbeChild.Remote(process))
            Install(remote);
        try
        {
            return read(process.Leader);
        }
        catch (SyscallException e)
        {
            return ProbeResult.Missing(e.Message);
        }
    }
}

/// <summary>PTRACE_SECCOMP_GET_FILTER returns the filter we installed, byte for byte.</summary>
public sealed class SeccompGetFilterProbe : IFeatureProbe
{
    public string Name => "ptrace_seccomp_get_filter";
    public string? CriuFeature => "seccomp_filters";
    public bool Required => true;

    public ProbeResult Probe() => ProbeSeccompFilter.WithFilteredChild(thread =>
    {
        byte[]? got = thread.SeccompFilter(0);
        if (got == null)
            return ProbeResult.Missing("no filter found at index 0 after installing one");
        return got.AsSpan().SequenceEqual(ProbeSeccompFilter.Bytes)
            ? ProbeResult.Supported($"read back the installed filter ({got.Length / 8} instruction)")
            : ProbeResult.Missing($"filter read back differs ({got.Length} bytes)");
    });
}

/// <summary>PTRACE_SECCOMP_GET_METADATA reports the filter's flags (0 for ours).</summary>
public sealed class SeccompGetMetadataProbe : IFeatureProbe
{
    public string Name => "ptrace_seccomp_get_metadata";
    public string? CriuFeature => null;
    public bool Required => true;

    public ProbeResult Probe() => ProbeSeccompFilter.WithFilteredChild(thread =>
    {
        ulong flags = thread.SeccompFilterFlags(0);
        return flags == 0
            ? ProbeResult.Supported("metadata of the installed filter: flags 0")
            : ProbeResult.Missing($"unexpected flags 0x{flags:x} for a filter installed without flags");
    });
}

/// <summary>PTRACE_GET_RSEQ_CONFIGURATION on a glibc program (which registers rseq at start).</summary>
public sealed class RseqConfigurationProbe : IFeatureProbe
{
    public string Name => "ptrace_get_rseq_configuration";
    public string? CriuFeature => "get_rseq_conf";
    public bool Required => true;

    public ProbeResult Probe()
    {
        using var child = File.Exists("/bin/sleep") ? ProbeChild.StartProgram("/bin/sleep", "sleep", "60") : ProbeChild.StartPuppet();
        var process = child.Seize();
        try
        {
            var conf = process.Leader.RseqConfiguration();
            return ProbeResult.Supported(conf.RseqAbiPointer != 0
                ? $"rseq area 0x{conf.RseqAbiPointer:x}, size {conf.RseqAbiSize}, signature 0x{conf.Signature:x8}"
                : "request works (probe child has no rseq registered)");
        }
        catch (SyscallException e)
        {
            return ProbeResult.Missing(e.Message);
        }
        finally
        {
            process.Detach();
        }
    }
}
