using Crisp.Dump;
using Crisp.Images.Proto;
using Crisp.Linux;
using Crisp.Linux.Proc;
using Crisp.Resources.TaskState;

namespace Crisp.Resources.Creds;

/// <summary>Each thread's credentials as they are: ids and groups and capability sets from
/// /proc/PID/task/TID/status, securebits by a remote prctl (only the thread itself can ask).</summary>
public sealed class CredsDump : IDumpStage
{
    public string Name => "creds";

    public void Dump(DumpContext ctx, DumpTask task)
    {
        foreach (var thread in task.Threads)
        {
            var s = ProcStatus.ReadThread(task.Pid, thread.Tid);
            if (s.Uid.Length != 4 || s.Gid.Length != 4)
                throw new CrispException($"{Procfs.Host.Path(task.Pid, thread.Tid, "status")}: cannot read Uid/Gid");
            var creds = new creds_entry
            {
                Uid = s.Uid[0], Euid = s.Uid[1], Suid = s.Uid[2], Fsuid = s.Uid[3],
                Gid = s.Gid[0], Egid = s.Gid[1], Sgid = s.Gid[2], Fsgid = s.Gid[3],
                NoNewPrivs = s.NoNewPrivs ? 1u : 0u,
            };
            CapWords.Put(creds.CapInh, s.CapInh);
            CapWords.Put(creds.CapPrm, s.CapPrm);
            CapWords.Put(creds.CapEff, s.CapEff);
            CapWords.Put(creds.CapBnd, s.CapBnd);
            CapWords.Put(creds.CapAmb, s.CapAmb);
            creds.Groups.AddRange(s.Groups);
            using (var remote = new ThreadRemote(ctx, task, thread))
                creds.Secbits = (uint)remote.Call("prctl(PR_GET_SECUREBITS)", Sysno.prctl, Prctl.PR_GET_SECUREBITS);
            thread.Core.ThreadCore.Creds = creds;
        }
    }
}
