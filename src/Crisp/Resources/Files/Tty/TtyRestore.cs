using Crisp.Images.Proto;
using Crisp.Linux;
using Crisp.Restore;

namespace Crisp.Resources.Files.Tty;

/// <summary>Sessions and their terminals. Prepare: a shell job (--shell-job, root not a session leader)
/// joins crisp's session, and crisp's process group where its root was not a group leader — as CRIU's
/// prepare_pstree_for_shell_job. Restore, once a task's fds are in: a session leader whose session had
/// one of the tree's ptys as controlling terminal takes it again (TIOCSCTTY) and gives the foreground to
/// the group that had it; the root of a shell job becomes the foreground group of crisp's terminal.</summary>
public sealed class TtyRestore : IRestoreStage
{
    public string Name => "tty";

    public void Prepare(RestoreContext ctx)
    {
        if (ctx.Options.ShellJob)
            AdoptCallerSession(ctx);
    }

    public void Restore(RestoreContext ctx, RestoreTask task)
    {
        var ptys = ctx.Files.Ptys;
        if (task.Entry.Sid == task.Entry.Pid)
        {
            var infos = ptys.Infos(ctx);
            // The master's entry knows the session; a slave's too when a member had it as terminal.
            var ctty = infos.Values.Where(i => i.Sid == task.Entry.Pid && i.Pty is not null
                    && (infos.ContainsKey((i.Pty.Index << 1) | 1) || ctx.Options.OrphanPtsMaster))
                .OrderByDescending(i => i.Id & 1).FirstOrDefault();
            if (ctty is not null)
                TakeTerminal(ctx, task, ctty);
        }
        if (task == ctx.Root && ptys.InheritedTerminal && task.Entry.Sid != task.Entry.Pid && task.Entry.Pgid == task.Entry.Pid)
        {
            // CRIU's pty_open_unpaired_slave: keys pressed on the terminal signal the job's group.
            int pgid = (int)task.Entry.Pgid;
            Terminals.WithoutSigttou(() =>
            {
                try { Terminals.SetInt(0, Terminals.TIOCSPGRP, pgid); }
                catch (SyscallException e) { ctx.Log.Warn($"shell job: group {pgid} not made the terminal's foreground: {e.Message}"); }
            });
        }
        OpenControllingTty(ctx, task);
    }

    /// <summary>The task's /dev/tty fds, opened by the task itself now that its session has its terminal (its
    /// leader, restored before it, took it; a shell job's is crisp's), then moved to their numbers. Each task
    /// gets its own description: they share nothing a terminal keeps per description but the status flags.</summary>
    private static void OpenControllingTty(RestoreContext ctx, RestoreTask task)
    {
        var open = ctx.Files.Open;
        if (open.InTask.Count == 0 || !open.Fdinfos.TryGetValue(task.Ids.FilesId, out var fds))
            return;
        var files = ctx.Files.Ptys.Files(ctx);
        foreach (var fi in fds.Where(f => open.InTask.Contains(f.Id)))
        {
            var tfe = files.First(f => f.Id == fi.Id);
            ulong at = task.Puppet.Remote.PutOnScratch(System.Text.Encoding.ASCII.GetBytes("/dev/tty\0"));
            int flags = (int)tfe.Flags & ~FileIo.O_CLOEXEC;
            long fd = task.Call("open(/dev/tty)", Sysno.open, (long)at, flags | FileIo.O_NOCTTY);
            if (fd != fi.Fd)
            {
                task.Call($"dup3(/dev/tty, {fi.Fd})", Sysno.dup3, fd, fi.Fd, (fi.Flags & FdOps.FD_CLOEXEC) != 0 ? FileIo.O_CLOEXEC : 0);
                task.Puppet.Remote.Syscall(Sysno.close, fd);
            }
            else if ((fi.Flags & FdOps.FD_CLOEXEC) != 0)
                task.Call("fcntl(F_SETFD)", Sysno.fcntl, fd, FdOps.F_SETFD, FdOps.FD_CLOEXEC);
            ctx.Log.Debug($"task {task.Pid}: fd {fi.Fd} is /dev/tty again");
        }
    }

    /// <summary>In the leader itself (only a session's own leader may): open the slave without making it the
    /// terminal by accident, TIOCSCTTY, TIOCSPGRP to the group that was in the foreground, close.</summary>
    private static void TakeTerminal(RestoreContext ctx, RestoreTask task, tty_info_entry info)
    {
        uint index = info.Pty.Index;
        var scratch = new byte[128];
        System.Text.Encoding.ASCII.GetBytes($"/dev/pts/{index}\0").CopyTo(scratch, 0);
        int pgrp = (int)(info.Pgrp != 0 ? info.Pgrp : task.Entry.Pgid);
        BitConverter.GetBytes(pgrp).CopyTo(scratch, 64);
        ulong at = task.Puppet.Remote.PutOnScratch(scratch);
        long fd = task.Call($"open(/dev/pts/{index})", Sysno.open, (long)at, FileIo.O_RDWR | FileIo.O_NOCTTY | FileIo.O_CLOEXEC);
        try
        {
            task.Call($"ioctl(/dev/pts/{index}, TIOCSCTTY)", Sysno.ioctl, fd, Terminals.TIOCSCTTY, 0);
            task.Call($"ioctl(/dev/pts/{index}, TIOCSPGRP, {pgrp})", Sysno.ioctl, fd, Terminals.TIOCSPGRP, (long)at + 64);
        }
        finally
        {
            task.Puppet.Remote.Syscall(Sysno.close, fd);
        }
        ctx.Log.Debug($"task {task.Pid}: /dev/pts/{index} is its session's terminal again, group {pgrp} in front");
    }

    /// <summary>The tree's outside session (and the root's outside group) become crisp's own: the ids in the
    /// images belonged to the shell that ran the job at dump time.</summary>
    private static void AdoptCallerSession(RestoreContext ctx)
    {
        var root = ctx.Root.Entry;
        if (root.Sid == root.Pid)
            return;
        uint oldSid = root.Sid, oldPgid = root.Pgid;
        uint sid = (uint)RawSyscall.Call("getsid", Sysno.getsid, 0);
        uint pgid = (uint)RawSyscall.Call("getpgid", Sysno.getpgid, 0);
        var pids = ctx.Tasks.Select(t => t.Entry.Pid).ToHashSet();
        if (oldSid != sid)
        {
            if (pids.Contains(sid) || ctx.Tasks.Any(t => t.Entry.Sid == sid || t.Entry.Pgid == sid))
                throw new CrispException($"--shell-job: crisp's session {sid} is also an id in the images");
            foreach (var t in ctx.Tasks)
            {
                if (t.Entry.Sid == oldSid)
                    t.Entry.Sid = sid;
                if (t.Entry.Pgid == oldSid)
                    t.Entry.Pgid = sid;
            }
            ctx.Log.Info($"shell job: session {oldSid} -> {sid}");
        }
        oldPgid = root.Pgid;
        if (oldPgid == root.Pid || oldPgid == pgid)
            return;
        if (pids.Contains(pgid) || (pgid != sid && ctx.Tasks.Any(t => t.Entry.Pgid == pgid)))
            throw new CrispException($"--shell-job: crisp's process group {pgid} is also an id in the images");
        foreach (var t in ctx.Tasks)
            if (t.Entry.Pgid == oldPgid)
                t.Entry.Pgid = pgid;
        ctx.Log.Info($"shell job: process group {oldPgid} -> {pgid}");
    }
}
