using System.Runtime.InteropServices;

namespace Crisp.Linux;

/// <summary>capget(2) with the 64-bit (version 3) ABI.</summary>
public static unsafe class Capabilities
{
    public const uint LINUX_CAPABILITY_VERSION_3 = 0x20080522;
    public const int CAP_CHOWN = 0, CAP_DAC_OVERRIDE = 1, CAP_KILL = 5, CAP_SETGID = 6, CAP_SETUID = 7,
        CAP_SETPCAP = 8, CAP_NET_ADMIN = 12, CAP_SYS_CHROOT = 18, CAP_SYS_PTRACE = 19, CAP_SYS_ADMIN = 21,
        CAP_SYS_RESOURCE = 24, CAP_CHECKPOINT_RESTORE = 40, CAP_LAST_CAP = 40;

    /// <summary>The effective, permitted and inheritable sets of <paramref name="pid"/> (0 = caller).</summary>
    public static CapSets Get(int pid = 0)
    {
        var header = new CapUserHeader { Version = LINUX_CAPABILITY_VERSION_3, Pid = pid };
        var data = stackalloc CapUserData[2];
        RawSyscall.Call("capget", Sysno.capget, (long)&header, (long)data);
        static ulong Join(uint lo, uint hi) => lo | (ulong)hi << 32;
        return new CapSets(
            Join(data[0].Effective, data[1].Effective),
            Join(data[0].Permitted, data[1].Permitted),
            Join(data[0].Inheritable, data[1].Inheritable));
    }
}

public readonly record struct CapSets(ulong Effective, ulong Permitted, ulong Inheritable);

/// <summary>struct __user_cap_header_struct.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct CapUserHeader
{
    public uint Version;
    public int Pid;
}

/// <summary>struct __user_cap_data_struct (one per 32 capabilities).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct CapUserData
{
    public uint Effective;
    public uint Permitted;
    public uint Inheritable;
}
