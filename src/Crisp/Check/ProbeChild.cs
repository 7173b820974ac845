using Crisp.Compel;
using Crisp.Compel.Puppets;
using Crisp.Linux;
using Crisp.Linux.Proc;

namespace Crisp.Check;

/// <summary>A harmless child to probe on: the spinning puppet ELF run from a memfd (or any program).
/// It owns the tracer that seizes it; Dispose kills and reaps it (on that tracer's thread) and any task
/// adopted, then ends the tracer.</summary>
public sealed class ProbeChild : IDisposable
{
    private readonly List<int> _adopted = [];
    private bool _disposed;

    private ProbeChild(int pid) => Pid = pid;

    public int Pid { get; }

    /// <summary>The tracer of this probe (its thread is the one ptrace binds the child to).</summary>
    public Tracer Tracer { get; } = new("crisp-probe");

    /// <summary>Starts the puppet and waits until it runs its own code (exec done).</summary>
    public static ProbeChild StartPuppet(SpawnOptions? options = null)
    {
        using var made = Memfd.Create("crisp-check", Memfd.MFD_CLOEXEC | Memfd.MFD_EXEC);
        File.WriteAllBytes($"/proc/self/fd/{made.Fd}", PuppetElf.Build());
        // The child execs /proc/self/fd/N after its fd actions: N must not be a number those put something else on.
        var targets = (options?.Fds.Select(f => f.Target) ?? []).Concat(options?.Opens.Select(o => o.Target) ?? []).ToHashSet();
        using var moved = targets.Contains(made.Fd) ? MovedAbove(made.Fd, targets) : null;
        int memfd = moved?.Fd ?? made.Fd;
        var child = new ProbeChild(Spawn.Start($"/proc/self/fd/{memfd}", ["crisp-check"], options));
        try
        {
            string prefix = $"{PuppetElf.BaseAddress:x8}-";
            child.WaitFor(() => File.ReadLines(Procfs.Host.Path(child.Pid, "maps")).FirstOrDefault()?.StartsWith(prefix) == true);
        }
        catch
        {
            child.Dispose();
            throw;
        }
        return child;
    }

    private static UnixFd MovedAbove(int fd, HashSet<int> taken)
    {
        var copy = new UnixFd((int)RawSyscall.Call("fcntl(F_DUPFD_CLOEXEC)", Sysno.fcntl, fd, 1030, taken.Max() + 1));
        return copy;
    }

    /// <summary>Starts <paramref name="path"/> and waits until it sleeps (its start-up code is done).</summary>
    public static ProbeChild StartProgram(string path, params string[] argv)
    {
        var child = new ProbeChild(Spawn.Start(path, argv));
        try
        {
            child.WaitFor(() => ProcStat.Read(child.Pid).State == 'S');
        }
        catch
        {
            child.Dispose();
            throw;
        }
        return child;
    }

    public SeizedProcess Seize(SeccompSuspend seccomp = SeccompSuspend.Auto, PtraceOptions extra = PtraceOptions.None)
        => new Seizer(Tracer).SeizeProcess(Pid, seccomp, extra);

    /// <summary>Remote syscalls through the puppet's own <c>syscall; int3</c>.</summary>
    public static RemoteTask Remote(SeizedProcess process)
        => new(process.Leader, gadgetAddress: PuppetElf.SyscallGadgetAddress);

    /// <summary>A task this child created that we are now responsible for (killed and reaped first).</summary>
    public void Adopt(int pid) => _adopted.Add(pid);

    public void Dispose()
    {
        if (_disposed)
            return;
        _disposed = true;
        foreach (int pid in _adopted.Append(Pid))
        {
            Signals.TryKill(pid);
            Tracer.Reap([pid]);
        }
        Tracer.Dispose();
    }

    private void WaitFor(Func<bool> ready)
    {
        var deadline = DateTime.UtcNow.AddSeconds(5);
        while (true)
        {
            try
            {
                if (ready())
                    return;
            }
            catch (Exception e) when (e is IOException or FormatException)
            {
            }
            if (DateTime.UtcNow > deadline)
                throw new CrispException($"probe child {Pid} did not start in time");
            Thread.Sleep(1);
        }
    }
}
