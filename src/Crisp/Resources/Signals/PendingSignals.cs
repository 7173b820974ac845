using Crisp.Compel;
using Crisp.Images.Proto;
using Crisp.Linux;

namespace Crisp.Resources.Signals;

/// <summary>A thread's queued signals read with PTRACE_PEEKSIGINFO, which copies siginfos without
/// dequeuing them: a dump that leaves the task running must not consume its pending signals.</summary>
public static class PendingSignals
{
    private const int Batch = 32;

    /// <summary>Every queued siginfo, oldest first: the thread's private queue, or with
    /// <paramref name="shared"/> its process's.</summary>
    public static signal_queue_entry Peek(SeizedThread thread, bool shared)
    {
        var queue = new signal_queue_entry();
        var buffer = new byte[Batch * SigInfo.Size];
        while (true)
        {
            int n = thread.PeekSigInfo((ulong)queue.Signals.Count, shared, buffer);
            for (int i = 0; i < n; i++)
                queue.Signals.Add(new siginfo_entry
                {
                    Siginfo = Google.Protobuf.ByteString.CopyFrom(buffer, i * SigInfo.Size, SigInfo.Size),
                });
            if (n < Batch)
                return queue;
        }
    }
}
