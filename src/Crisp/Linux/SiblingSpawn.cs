using System.Runtime.InteropServices;

namespace Crisp.Linux;

/// <summary>Starts a program as a child of crisp's own parent (clone3 with CLONE_PARENT), optionally with
/// a chosen PID (set_tid). posix_spawn cannot do this, and the .NET runtime must not run in a forked
/// child, so the clone3 and the execve that follows it in the child run in a few bytes of machine code:
/// the child never returns into the runtime. CLONE_VFORK keeps crisp's thread waiting until the child
/// has exec'd (or failed to, exiting 127), so nothing of crisp's memory is used by it afterwards.</summary>
public static unsafe class SiblingSpawn
{
    private static nint _code;
    private static readonly Lock CodeLock = new();

    /// <summary>Starts <paramref name="path"/> as a sibling of crisp; returns its PID. With
    /// <paramref name="pid"/> &gt; 0 the child gets exactly that PID (needs CAP_CHECKPOINT_RESTORE or
    /// CAP_SYS_ADMIN). <paramref name="namespaceFlags"/> (CLONE_NEW*) start it in new namespaces. The caller
    /// cannot wait for it (it is not crisp's child) except as its tracer.</summary>
    public static int Start(string path, IReadOnlyList<string> argv, IReadOnlyList<string> envp, int pid = 0, ulong namespaceFlags = 0)
    {
        if (RuntimeInformation.ProcessArchitecture != Architecture.X64)
            throw new PlatformNotSupportedException("starting a sibling process is implemented for x86-64 only");
        var strings = new List<nint>();
        nint* argvp = null, envpp = null;
        try
        {
            nint pathp = Utf8(path, strings);
            argvp = Array(argv, strings);
            envpp = Array(envp, strings);
            int tid = pid;
            var args = new CloneArgs
            {
                // clone3 wants no exit signal with CLONE_PARENT: the child gets crisp's own (SIGCHLD).
                Flags = Clone3.CLONE_PARENT | Clone3.CLONE_VFORK | namespaceFlags,
                SetTid = pid > 0 ? (ulong)&tid : 0,
                SetTidSize = pid > 0 ? 1UL : 0,
            };
            var run = (delegate* unmanaged<CloneArgs*, ulong, nint, nint*, nint*, long>)EnsureCode();
            long r = run(&args, (ulong)sizeof(CloneArgs), pathp, argvp, envpp);
            if (r == -Errnos.EEXIST)
                throw new CrispException($"PID {pid} is already in use");
            if (r < 0)
                throw new SyscallException($"clone3(CLONE_PARENT{(namespaceFlags != 0 ? $" | 0x{namespaceFlags:x}" : "")}{(pid > 0 ? $", set_tid={pid}" : "")})", (int)-r);
            return (int)r;
        }
        finally
        {
            NativeMemory.Free(argvp);
            NativeMemory.Free(envpp);
            foreach (var s in strings)
                Marshal.FreeCoTaskMem(s);
        }
    }

    private static nint EnsureCode()
    {
        lock (CodeLock)
        {
            if (_code != 0)
                return _code;
            nint page = Mman.Map(0, Mman.PageSize, Mman.PROT_READ | Mman.PROT_WRITE, Mman.MAP_PRIVATE | Mman.MAP_ANONYMOUS);
            MachineCode.SiblingSpawner.CopyTo(new Span<byte>((void*)page, MachineCode.SiblingSpawner.Length));
            Mman.Protect(page, Mman.PageSize, Mman.PROT_READ | Mman.PROT_EXEC);
            return _code = page;
        }
    }

    private static nint Utf8(string s, List<nint> strings)
    {
        nint p = Marshal.StringToCoTaskMemUTF8(s);
        strings.Add(p);
        return p;
    }

    private static nint* Array(IReadOnlyList<string> items, List<nint> strings)
    {
        var a = (nint*)NativeMemory.AllocZeroed((nuint)(items.Count + 1), (nuint)sizeof(nint));
        for (int i = 0; i < items.Count; i++)
            a[i] = Utf8(items[i], strings);
        return a;
    }
}
