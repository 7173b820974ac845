using System.Runtime.InteropServices;
using System.Text;

namespace Crisp.Linux;

/// <summary>prctl(2) (through the raw syscall: glibc's wrapper is variadic).</summary>
public static unsafe class Prctl
{
    public const int PR_SET_PDEATHSIG = 1, PR_GET_PDEATHSIG = 2, PR_GET_DUMPABLE = 3, PR_SET_DUMPABLE = 4,
        PR_GET_KEEPCAPS = 7, PR_SET_KEEPCAPS = 8, PR_SET_NAME = 15, PR_GET_NAME = 16,
        PR_GET_SECCOMP = 21, PR_SET_SECCOMP = 22, PR_CAPBSET_READ = 23, PR_CAPBSET_DROP = 24,
        PR_GET_SECUREBITS = 27, PR_SET_SECUREBITS = 28, PR_SET_TIMERSLACK = 29, PR_GET_TIMERSLACK = 30,
        PR_SET_MM = 35, PR_SET_CHILD_SUBREAPER = 36, PR_GET_CHILD_SUBREAPER = 37,
        PR_SET_NO_NEW_PRIVS = 38, PR_GET_NO_NEW_PRIVS = 39, PR_GET_TID_ADDRESS = 40,
        PR_SET_THP_DISABLE = 41, PR_GET_THP_DISABLE = 42, PR_CAP_AMBIENT = 47,
        PR_GET_SPECULATION_CTRL = 52, PR_SET_SPECULATION_CTRL = 53,
        PR_SET_TAGGED_ADDR_CTRL = 55, PR_GET_TAGGED_ADDR_CTRL = 56,
        PR_SET_VMA = 0x53564d41;

    /// <summary>PR_SET_MM sub-options.</summary>
    public const int PR_SET_MM_START_CODE = 1, PR_SET_MM_END_CODE = 2, PR_SET_MM_START_DATA = 3,
        PR_SET_MM_END_DATA = 4, PR_SET_MM_START_STACK = 5, PR_SET_MM_START_BRK = 6, PR_SET_MM_BRK = 7,
        PR_SET_MM_ARG_START = 8, PR_SET_MM_ARG_END = 9, PR_SET_MM_ENV_START = 10, PR_SET_MM_ENV_END = 11,
        PR_SET_MM_AUXV = 12, PR_SET_MM_EXE_FILE = 13, PR_SET_MM_MAP = 14, PR_SET_MM_MAP_SIZE = 15;

    /// <summary>PR_CAP_AMBIENT sub-options.</summary>
    public const int PR_CAP_AMBIENT_IS_SET = 1, PR_CAP_AMBIENT_RAISE = 2, PR_CAP_AMBIENT_LOWER = 3,
        PR_CAP_AMBIENT_CLEAR_ALL = 4;

    /// <summary>Raw prctl; throws on -1, naming the option.</summary>
    public static long Call(int option, ulong a2 = 0, ulong a3 = 0, ulong a4 = 0, ulong a5 = 0)
        => RawSyscall.Call($"prctl({option})", Sysno.prctl, option, (long)a2, (long)a3, (long)a4, (long)a5);

    public static string GetName()
    {
        byte* buf = stackalloc byte[16];
        new Span<byte>(buf, 16).Clear();
        Call(PR_GET_NAME, (ulong)buf);
        return Marshal.PtrToStringUTF8((nint)buf) ?? "";
    }

    /// <summary>Sets the calling thread's comm (truncated by the kernel to 15 bytes).</summary>
    public static void SetName(string name)
    {
        var bytes = Encoding.UTF8.GetBytes(name + "\0");
        fixed (byte* p = bytes)
            Call(PR_SET_NAME, (ulong)p);
    }

    public static int GetDumpable() => (int)Call(PR_GET_DUMPABLE);
    public static bool GetNoNewPrivs() => Call(PR_GET_NO_NEW_PRIVS) != 0;
    public static bool CapBoundingSetHas(int cap) => Call(PR_CAPBSET_READ, (ulong)cap) != 0;
    public static bool AmbientHas(int cap) => Call(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, (ulong)cap) != 0;
    public static uint GetSecureBits() => (uint)Call(PR_GET_SECUREBITS);
    public static bool GetChildSubreaper() { int v = 0; Call(PR_GET_CHILD_SUBREAPER, (ulong)&v); return v != 0; }
    public static int GetParentDeathSignal() { int v = 0; Call(PR_GET_PDEATHSIG, (ulong)&v); return v; }

    /// <summary>The calling thread's clear_child_tid address (needs CONFIG_CHECKPOINT_RESTORE).</summary>
    public static ulong GetTidAddress() { ulong v = 0; Call(PR_GET_TID_ADDRESS, (ulong)&v); return v; }

    /// <summary>sizeof(struct prctl_mm_map) as the running kernel expects it.</summary>
    public static uint GetMmMapSize() { uint v = 0; Call(PR_SET_MM, PR_SET_MM_MAP_SIZE, (ulong)&v); return v; }

    /// <summary>PR_SET_MM_MAP: sets all mm fields at once (the caller's own mm; needs CAP_SYS_RESOURCE
    /// or a matching exe_fd). <paramref name="auxv"/> is copied by the kernel.</summary>
    public static void SetMmMap(PrctlMmMap map, ReadOnlySpan<ulong> auxv)
    {
        fixed (ulong* a = auxv)
        {
            map.Auxv = (ulong)a;
            map.AuxvSize = (uint)(auxv.Length * sizeof(ulong));
            Call(PR_SET_MM, PR_SET_MM_MAP, (ulong)&map, (ulong)sizeof(PrctlMmMap));
        }
    }
}

/// <summary>struct prctl_mm_map (104 bytes): the mm layout PR_SET_MM_MAP installs.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct PrctlMmMap
{
    public ulong StartCode, EndCode, StartData, EndData, StartBrk, Brk, StartStack,
        ArgStart, ArgEnd, EnvStart, EnvEnd;
    /// <summary>Pointer to the auxv array (in the calling process).</summary>
    public ulong Auxv;
    /// <summary>Size of the auxv array in bytes.</summary>
    public uint AuxvSize;
    /// <summary>fd of the new /proc/PID/exe, or -1 (as uint) to keep it.</summary>
    public uint ExeFd;
}
