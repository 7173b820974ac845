using System.Runtime.InteropServices;

namespace Crisp.Linux;

/// <summary>What a spawned child gets besides argv/envp.</summary>
public sealed class SpawnOptions
{
    /// <summary>Environment; null = crisp's own environment.</summary>
    public IReadOnlyList<string>? Environment { get; init; }

    /// <summary>fd in crisp → fd number in the child (e.g. a pipe end → 0/1/2). Applied in order with dup2;
    /// dup2 clears close-on-exec on the target, so crisp's O_CLOEXEC descriptors can be passed this way.</summary>
    public IReadOnlyList<(int Source, int Target)> Fds { get; init; } = [];

    /// <summary>Files opened in the child: (target fd, path, open flags, mode), e.g. stdout to a log.</summary>
    public IReadOnlyList<(int Target, string Path, int Flags, int Mode)> Opens { get; init; } = [];

    /// <summary>Put the child in a new process group (its own pid).</summary>
    public bool NewProcessGroup { get; init; }

    /// <summary>Start a new session (setsid).</summary>
    public bool NewSession { get; init; }
    /// <summary>The child's current directory (an open directory fd, fchdir'ed before exec: a relative program path
    /// is found there too); -1: crisp's own.</summary>
    public int WorkingDirectoryFd { get; init; } = -1;
}

/// <summary>posix_spawn(3) for processes crisp will trace. All signals are reset to default and none
/// is blocked in the child, so it does not inherit .NET's ignored SIGPIPE or blocked signals.
/// Never use System.Diagnostics.Process for tracees: its SIGCHLD reaper steals wait statuses.</summary>
public static unsafe partial class Spawn
{
    private const short POSIX_SPAWN_SETPGROUP = 0x02, POSIX_SPAWN_SETSIGDEF = 0x04,
        POSIX_SPAWN_SETSIGMASK = 0x08, POSIX_SPAWN_SETSID = 0x80;

    // glibc: posix_spawnattr_t is 336 bytes, posix_spawn_file_actions_t 80, sigset_t 128.
    private const int AttrSize = 512, ActionsSize = 256, SigsetSize = 128;

    /// <summary>Starts <paramref name="path"/> with <paramref name="argv"/> (argv[0] included). Returns the pid.
    /// The caller owns the child and must reap it (<see cref="Wait.WaitPid"/>, on the tracer thread while traced).</summary>
    public static int Start(string path, IReadOnlyList<string> argv, SpawnOptions? options = null)
    {
        options ??= new SpawnOptions();
        var env = options.Environment ?? CurrentEnvironment();
        byte* attr = (byte*)NativeMemory.AllocZeroed(AttrSize);
        byte* actions = (byte*)NativeMemory.AllocZeroed(ActionsSize);
        byte* sigs = (byte*)NativeMemory.AllocZeroed(SigsetSize);
        var strings = new List<nint>();
        nint* argvp = null, envp = null;
        try
        {
            Check(posix_spawnattr_init(attr), "posix_spawnattr_init");
            Check(posix_spawn_file_actions_init(actions), "posix_spawn_file_actions_init");
            short flags = POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK;
            // Raw bits for signals 1-64: sigfillset would leave out glibc's internal 32 and 33, and
            // posix_spawn then sets those to SIG_IGN in the child (ignored signals survive exec).
            new Span<byte>(sigs, 8).Fill(0xff);
            Check(posix_spawnattr_setsigdefault(attr, sigs), "posix_spawnattr_setsigdefault");
            sigemptyset(sigs);
            Check(posix_spawnattr_setsigmask(attr, sigs), "posix_spawnattr_setsigmask");
            if (options.NewProcessGroup)
            {
                flags |= POSIX_SPAWN_SETPGROUP;
                Check(posix_spawnattr_setpgroup(attr, 0), "posix_spawnattr_setpgroup");
            }
            if (options.NewSession)
                flags |= POSIX_SPAWN_SETSID;
            Check(posix_spawnattr_setflags(attr, flags), "posix_spawnattr_setflags");

            foreach (var (source, target) in options.Fds)
                Check(posix_spawn_file_actions_adddup2(actions, source, target), "posix_spawn_file_actions_adddup2");
            if (options.WorkingDirectoryFd >= 0)
                Check(posix_spawn_file_actions_addfchdir_np(actions, options.WorkingDirectoryFd), "posix_spawn_file_actions_addfchdir_np");
            foreach (var (target, file, oflags, mode) in options.Opens)
            {
                nint s = Marshal.StringToCoTaskMemUTF8(file);
                strings.Add(s);
                Check(posix_spawn_file_actions_addopen(actions, target, s, oflags, mode), "posix_spawn_file_actions_addopen");
            }

            argvp = ToNative(argv, strings);
            envp = ToNative(env, strings);
            nint pathp = Marshal.StringToCoTaskMemUTF8(path);
            strings.Add(pathp);
            int pid;
            int err = posix_spawn(&pid, pathp, actions, attr, argvp, envp);
            if (err != 0)
                throw new SyscallException($"posix_spawn({path})", err);
            return pid;
        }
        finally
        {
            posix_spawn_file_actions_destroy(actions);
            posix_spawnattr_destroy(attr);
            NativeMemory.Free(attr);
            NativeMemory.Free(actions);
            NativeMemory.Free(sigs);
            NativeMemory.Free(argvp);
            NativeMemory.Free(envp);
            foreach (var s in strings)
                Marshal.FreeCoTaskMem(s);
        }
    }

    /// <summary>Waits for a child to exit and reaps it. Call on the tracer thread if the child is
    /// (or may still be) traced by crisp.</summary>
    public static WaitStatus Reap(int pid)
    {
        while (true)
        {
            Wait.WaitPid(pid, out var status, Wait.WALL);
            if (status.Dead)
                return status;
        }
    }

    /// <summary>Reaps the child if it has exited; null while it still runs.</summary>
    public static WaitStatus? TryReap(int pid)
    {
        int r = Wait.TryWaitPid(pid, out var status, Wait.WALL | Wait.WNOHANG);
        if (r < 0)
            throw new SyscallException($"waitpid({pid})", -r);
        return r == 0 || !status.Dead ? null : status;
    }

    private static List<string> CurrentEnvironment()
    {
        var list = new List<string>();
        foreach (System.Collections.DictionaryEntry e in System.Environment.GetEnvironmentVariables())
            list.Add($"{e.Key}={e.Value}");
        return list;
    }

    private static nint* ToNative(IReadOnlyList<string> items, List<nint> owned)
    {
        var array = (nint*)NativeMemory.AllocZeroed((nuint)(items.Count + 1), (nuint)sizeof(nint));
        for (int i = 0; i < items.Count; i++)
        {
            array[i] = Marshal.StringToCoTaskMemUTF8(items[i]);
            owned.Add(array[i]);
        }
        return array;
    }

    private static void Check(int err, string call)
    {
        if (err != 0)
            throw new SyscallException(call, err);
    }

    [LibraryImport("libc")] private static partial int posix_spawn_file_actions_addfchdir_np(byte* actions, int fd);
    [LibraryImport("libc")] private static partial int posix_spawn(int* pid, nint path, byte* actions, byte* attr, nint* argv, nint* envp);
    [LibraryImport("libc")] private static partial int posix_spawnattr_init(byte* attr);
    [LibraryImport("libc")] private static partial int posix_spawnattr_destroy(byte* attr);
    [LibraryImport("libc")] private static partial int posix_spawnattr_setflags(byte* attr, short flags);
    [LibraryImport("libc")] private static partial int posix_spawnattr_setsigdefault(byte* attr, byte* sigs);
    [LibraryImport("libc")] private static partial int posix_spawnattr_setsigmask(byte* attr, byte* sigs);
    [LibraryImport("libc")] private static partial int posix_spawnattr_setpgroup(byte* attr, int pgroup);
    [LibraryImport("libc")] private static partial int posix_spawn_file_actions_init(byte* actions);
    [LibraryImport("libc")] private static partial int posix_spawn_file_actions_destroy(byte* actions);
    [LibraryImport("libc")] private static partial int posix_spawn_file_actions_adddup2(byte* actions, int fd, int newfd);
    [LibraryImport("libc")] private static partial int posix_spawn_file_actions_addopen(byte* actions, int fd, nint path, int oflag, int mode);
    [LibraryImport("libc")] private static partial int sigemptyset(byte* set);
}
