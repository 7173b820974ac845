using Crisp.Dump;
using Crisp.Images.Proto;
using Crisp.Linux;

namespace Crisp.Resources.Rseq;

/// <summary>Each thread's rseq registration (glibc registers one per thread), from
/// PTRACE_GET_RSEQ_CONFIGURATION. Threads without one get no rseq_entry.</summary>
public sealed class RseqDump : IDumpStage
{
    public string Name => "rseq";

    public void Dump(DumpContext ctx, DumpTask task)
    {
        foreach (var thread in task.Threads)
        {
            var conf = thread.Thread.RseqConfiguration();
            if (conf.RseqAbiPointer == 0)
                continue;
            thread.Core.ThreadCore.RseqEntry = new rseq_entry
            {
                RseqAbiPointer = conf.RseqAbiPointer,
                RseqAbiSize = conf.RseqAbiSize,
                Signature = conf.Signature,
            };
        }
    }
}
