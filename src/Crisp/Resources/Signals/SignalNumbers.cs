using Crisp.Linux;

namespace Crisp.Resources.Signals;

/// <summary>The signals that have a disposition: 1..64 but SIGKILL and SIGSTOP — the 62 entries CRIU
/// keeps, in this order, in task_core.sigactions.</summary>
public static class SignalNumbers
{
    public const int SigMax = 64;

    public static IEnumerable<int> WithDisposition()
    {
        for (int sig = 1; sig <= SigMax; sig++)
            if (sig != Linux.Signals.SIGKILL && sig != Linux.Signals.SIGSTOP)
                yield return sig;
    }

    public static readonly int DispositionCount = SigMax - 2;
}
