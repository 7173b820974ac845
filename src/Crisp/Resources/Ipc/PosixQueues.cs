using Crisp.Images.Proto;
using Crisp.Linux;

namespace Crisp.Resources.Ipc;

/// <summary>POSIX message queues live in the mqueue filesystem of their IPC namespace, with or without an fd
/// open on them. A namespace of the tree's own is dumped with every queue, its attributes, owner, mode and queued
/// messages (crisp's field of ipcns-var: CRIU carries none), and they are created again in the new namespace.
/// Listed through a detached mount of that namespace's mqueue fs (fsopen/fsmount from a thread in it; nothing is
/// attached to any mount tree); every call here acts on the calling thread's namespace
/// (<see cref="IpcNamespaceThread"/>).</summary>
public static class PosixQueues
{
    private const int FSOPEN_CLOEXEC = 1, FSCONFIG_CMD_CREATE = 6, FSMOUNT_CLOEXEC = 1;

    /// <summary>Names of the queues in the calling thread's IPC namespace; null when they cannot be listed.</summary>
    public static unsafe List<string>? List(out string? why)
    {
        why = null;
        byte[] type = "mqueue\0"u8.ToArray();
        long fs;
        fixed (byte* t = type)
            fs = RawSyscall.TryCall(Sysno.fsopen, (long)t, FSOPEN_CLOEXEC);
        if (fs < 0)
        {
            why = $"fsopen(mqueue): {Errnos.Describe((int)-fs)}";
            return null;
        }
        using var fsFd = new UnixFd((int)fs);
        long r = RawSyscall.TryCall(Sysno.fsconfig, fs, FSCONFIG_CMD_CREATE, 0, 0, 0);
        if (r < 0)
        {
            why = $"fsconfig(mqueue): {Errnos.Describe((int)-r)}";
            return null;
        }
        long mnt = RawSyscall.TryCall(Sysno.fsmount, fs, FSMOUNT_CLOEXEC, 0);
        if (mnt < 0)
        {
            why = $"fsmount(mqueue): {Errnos.Describe((int)-mnt)}";
            return null;
        }
        using var mntFd = new UnixFd((int)mnt);
        return Directory.EnumerateFileSystemEntries($"/proc/thread-self/fd/{mnt}").Select(p => "/" + Path.GetFileName(p)).Order().ToList();
    }

    /// <summary>Every queue of the namespace with its messages. The messages are taken off (mq_timedreceive) and put
    /// back in the same order at once, so the queue is as it was; a queue with a notification registered is refused
    /// (the kernel keeps no way to read the registration's sigevent).</summary>
    public static List<crisp_posix_mq_entry> ReadAll(List<string> names)
    {
        var all = new List<crisp_posix_mq_entry>();
        foreach (string name in names)
        {
            using var fd = PosixMq.Open(name, FileIo.O_RDWR | FileIo.O_NONBLOCK | FileIo.O_CLOEXEC);
            if (PosixMq.NotifyPid(fd.Fd) is int pid and not 0)
                throw new CrispException($"POSIX message queue {name} has a notification (mq_notify) registered by pid {pid}: not supported");
            var st = Security.FileStatus.OfHandle(fd);
            var attr = PosixMq.GetAttr(fd.Fd);
            var entry = new crisp_posix_mq_entry
            {
                Name = name, Uid = st.Uid, Gid = st.Gid, Mode = st.Permissions,
                Maxmsg = (ulong)attr.MaxMsg, Msgsize = (ulong)attr.MsgSize,
            };
            var taken = new List<(uint Prio, byte[] Data)>();
            try
            {
                for (long i = 0; i < attr.CurMsgs; i++)
                    taken.Add(PosixMq.Receive(fd.Fd, attr.MsgSize));
            }
            finally
            {
                foreach (var (prio, data) in taken)
                    PosixMq.Send(fd.Fd, data, prio);
            }
            foreach (var (prio, data) in taken)
                entry.Msgs.Add(new crisp_posix_mq_msg { Prio = prio, Data = Google.Protobuf.ByteString.CopyFrom(data) });
            all.Add(entry);
        }
        return all;
    }

    /// <summary>Creates a dumped queue with its attributes, owner and mode, and queues its messages again.</summary>
    public static void Create(crisp_posix_mq_entry q)
    {
        try
        {
            using var fd = PosixMq.Open(q.Name, FileIo.O_RDWR | FileIo.O_CREAT | FileIo.O_EXCL | FileIo.O_NONBLOCK | FileIo.O_CLOEXEC,
                0600, new PosixMq.Attr(0, (long)q.Maxmsg, (long)q.Msgsize, 0));
            foreach (var m in q.Msgs)
                PosixMq.Send(fd.Fd, m.Data.ToByteArray(), m.Prio);
            RawSyscall.Call("fchown", Sysno.fchown, fd.Fd, q.Uid, q.Gid);
            RawSyscall.Call("fchmod", Sysno.fchmod, fd.Fd, q.Mode);
        }
        catch (SyscallException e)
        {
            throw new CrispException($"POSIX message queue {q.Name} ({q.Maxmsg} messages of {q.Msgsize} bytes): {e.Message}");
        }
    }
}
