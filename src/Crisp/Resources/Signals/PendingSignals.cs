using System.Runtime.InteropServices;
using Crisp.Images.Proto;
using Crisp.Linux;

namespace Crisp.Resources.Signals;

/// <summary>A thread's queued signals read with PTRACE_PEEKSIGINFO, which copies siginfos without
/// dequeuing them: a dump that leaves the task running must not consume its pending signals.</summary>
public static unsafe class PendingSignals
{
    /// <summary>Peek the process-wide queue instead of the thread's private one.</summary>
    public const uint PTRACE_PEEKSIGINFO_SHARED = 1;
    private const int Batch = 32;

    [StructLayout(LayoutKind.Sequential)]
    private struct PeekSigInfoArgs
    {
        public ulong Off;
        public uint Flags;
        public int Nr;
    }

    /// <summary>Every queued siginfo, oldest first. Must run on the tracer thread.</summary>
    public static signal_queue_entry Peek(int tid, bool shared)
    {
        var queue = new signal_queue_entry();
        var buffer = new byte[Batch * SigInfo.Size];
        while (true)
        {
            var args = new PeekSigInfoArgs
            {
                Off = (ulong)queue.Signals.Count,
                Flags = shared ? PTRACE_PEEKSIGINFO_SHARED : 0,
                Nr = Batch,
            };
            long n;
            fixed (byte* p = buffer)
                n = Ptrace.TryRequest(PtraceRequest.PEEKSIGINFO, tid, (nint)(&args), (nint)p);
            if (n < 0)
                throw new SyscallException($"ptrace(PTRACE_PEEKSIGINFO{(shared ? ", shared" : "")}, {tid})", (int)-n);
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
