using Crisp.Linux;

namespace Crisp.Compel;

/// <summary>Lets one seized thread run on its own while every other thread of its process stays stopped —
/// what a device driver's helper thread needs to do its work (CUDA's restore thread while cuda-checkpoint
/// checkpoints or restores the device state). CRIU's cuda plugin does the same dance.</summary>
public static class LoneThread
{
    /// <summary>Blocks every signal but SIGTRAP in the thread (nothing may run a handler meanwhile), clears its
    /// ptrace options (its seccomp filters apply while it runs, as for any running thread), resumes it, runs
    /// <paramref name="action"/>, then interrupts it again and puts its signal mask and ptrace options (seccomp
    /// suspension included) back.</summary>
    public static void Run(SeizedThread thread, Action action)
    {
        var tracer = thread.Tracer;
        int tid = thread.Tid;
        ulong mask = tracer.Run(() =>
        {
            ulong saved = Ptrace.GetSigMask(tid);
            Ptrace.SetSigMask(tid, ~(1UL << (Signals.SIGTRAP - 1)));
            try
            {
                Ptrace.SetOptions(tid, PtraceOptions.None);
                Ptrace.Cont(tid);
            }
            catch
            {
                Ptrace.SetOptions(tid, thread.Options);
                Ptrace.SetSigMask(tid, saved);
                throw;
            }
            return saved;
        });
        try
        {
            action();
        }
        finally
        {
            tracer.Run(() =>
            {
                Ptrace.Interrupt(tid);
                WaitForInterruptStop(tid);
                Ptrace.SetOptions(tid, thread.Options);
                Ptrace.SetSigMask(tid, mask);
            });
        }
    }

    private static void WaitForInterruptStop(int tid)
    {
        while (true)
        {
            Wait.WaitPid(tid, out var status, Wait.WALL);
            if (status.Dead)
                throw new CrispException($"thread {tid} died while it ran alone ({status})");
            if (status.Stopped && status.Event == PtraceEvent.Stop)
                return;
            // A signal that reached it meanwhile (only SIGTRAP is unblocked): deliver it, as it would have been.
            Ptrace.Cont(tid, status.Stopped && status.Event == 0 ? status.StopSignal : 0);
        }
    }
}
