using System.Buffers.Binary;
using Crisp.Compel;
using Crisp.Linux;
using Crisp.Resources.Signals;

namespace Crisp.Resources.TaskState;

/// <summary>What only a thread itself answers, asked in one batch the first time a dump stage needs any of it
/// (<see cref="Dump.DumpTask.AnswersOf"/>): PR_GET_TID_ADDRESS (registers), PR_GET_PDEATHSIG and PR_GET_TIMERSLACK
/// (task state), sigaltstack (signals). Asked call by call by each stage, a 100-thread dump made ~800 stops here.
/// Each result is raw (-errno on failure): a stage checks its own, naming the call, as when it asked alone.</summary>
public sealed class ThreadAnswers
{
    private const int TidAddressAt = 0, PdeathAt = 8, AltStackAt = 16;

    public required int Tid { get; init; }
    public required long TidAddressResult { get; init; }
    public required ulong TidAddress { get; init; }
    public required long PdeathResult { get; init; }
    public required uint Pdeath { get; init; }
    public required long TimerSlack { get; init; }
    public required long AltStackResult { get; init; }
    public required byte[] AltStackBytes { get; init; }

    /// <summary>Runs the four calls in <paramref name="remote"/>'s thread (a batch where the thread allows one).</summary>
    public static ThreadAnswers Ask(RemoteTask remote, int tid)
    {
        ulong at = remote.PutOnScratch(new byte[AltStackAt + AltStack.Size]);
        var r = remote.Syscalls([
            new RemoteCall(Sysno.prctl, Prctl.PR_GET_TID_ADDRESS, (long)(at + TidAddressAt)),
            new RemoteCall(Sysno.prctl, Prctl.PR_GET_PDEATHSIG, (long)(at + PdeathAt)),
            new RemoteCall(Sysno.prctl, Prctl.PR_GET_TIMERSLACK),
            new RemoteCall(Sysno.sigaltstack, 0, (long)(at + AltStackAt)),
        ]);
        var b = new byte[AltStackAt + AltStack.Size];
        remote.ReadMemory(at, b);
        return new ThreadAnswers
        {
            Tid = tid,
            TidAddressResult = r[0], TidAddress = BinaryPrimitives.ReadUInt64LittleEndian(b.AsSpan(TidAddressAt)),
            PdeathResult = r[1], Pdeath = BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(PdeathAt)),
            TimerSlack = r[2],
            AltStackResult = r[3], AltStackBytes = b[AltStackAt..],
        };
    }

    /// <summary>A result as a value, or the SyscallException the call alone would have thrown.</summary>
    public long Checked(long result, string call) => RemoteTask.ThrowIfFailed(result, $"{call} in thread {Tid}");
}
