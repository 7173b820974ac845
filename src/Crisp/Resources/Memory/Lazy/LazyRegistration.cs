using System.Runtime.InteropServices;
using Crisp.Images.Proto;
using Crisp.Linux;
using Crisp.Restore;

namespace Crisp.Resources.Memory.Lazy;

/// <summary>A restored task's lazy memory handed to the lazy-pages daemon: a userfaultfd made inside the task by
/// remote syscalls (it must belong to the task's mm; the puppet is still root, so kernel-mode faults are handled
/// too, not only user-mode ones), its lazy VMAs registered MODE_MISSING while still empty, then the fd copied into
/// crisp (pidfd_getfd), sent over the lazy-pages socket with a pidfd of the task, and closed in the task — the
/// program never sees it. Asks for the fork event (a child forked while pages are missing gets a userfaultfd of its
/// own, which the daemon fills too), the unmap and MADV_DONTNEED/REMOVE events (the daemon never pushes stale
/// pages over memory the program dropped) and the remap event: without it an mremap that moves a lazy area drops
/// the moved VMA's registration and its pages not copied yet read as zeros; with it the registration moves along
/// and the daemon moves its pending pages to the new addresses.</summary>
public static class LazyRegistration
{
    /// <summary>The events asked for (the lazy_pages probe asks for the same).</summary>
    public const ulong Features = Userfaultfd.FEATURE_EVENT_FORK | Userfaultfd.FEATURE_EVENT_REMAP
        | Userfaultfd.FEATURE_EVENT_REMOVE | Userfaultfd.FEATURE_EVENT_UNMAP;

    /// <summary>Creates the userfaultfd in the task and registers <paramref name="vmas"/>; its fd in the task.</summary>
    public static int Register(RestoreTask task, IReadOnlyCollection<vma_entry> vmas)
    {
        long fd = task.Puppet.Remote.Syscall(Sysno.userfaultfd, FileIo.O_CLOEXEC | FileIo.O_NONBLOCK);
        if (fd < 0)
            throw new CrispException($"task {task.Pid}: userfaultfd in the task failed ({Errnos.Describe((int)-fd)}): lazy restore needs it (crisp check --feature lazy_pages)");
        try
        {
            Span<ulong> api = [Userfaultfd.UFFD_API, Features, 0];
            ulong at = task.Puppet.Remote.PutOnScratch(MemoryMarshal.AsBytes(api));
            long r = task.Puppet.Remote.Syscall(Sysno.ioctl, fd, Userfaultfd.UFFDIO_API, (long)at);
            if (r < 0)
                throw new CrispException($"task {task.Pid}: UFFDIO_API with the fork, remap, unmap and remove events failed ({Errnos.Describe((int)-r)})");
            foreach (var v in vmas)
            {
                Span<ulong> reg = [v.Start, v.End - v.Start, Userfaultfd.REGISTER_MODE_MISSING, 0];
                at = task.Puppet.Remote.PutOnScratch(MemoryMarshal.AsBytes(reg));
                r = task.Puppet.Remote.Syscall(Sysno.ioctl, fd, Userfaultfd.UFFDIO_REGISTER, (long)at);
                if (r < 0)
                    throw new CrispException($"task {task.Pid}: UFFDIO_REGISTER of 0x{v.Start:x}-0x{v.End:x} failed ({Errnos.Describe((int)-r)})");
            }
            return (int)fd;
        }
        catch
        {
            task.Puppet.Remote.Syscall(Sysno.close, fd);
            throw;
        }
    }

    /// <summary>Sends the task's userfaultfd (and a pidfd of it) to the daemon, then closes it in the task.</summary>
    public static void HandOver(RestoreTask task, int fd, LazyPagesClient client)
    {
        try
        {
            using var pidfd = PidFd.Open(task.HostPid);
            using var uffd = pidfd.GetFd(fd);
            client.Send(task.Pid, uffd.Fd, pidfd.Fd);
        }
        finally
        {
            task.Puppet.Remote.Syscall(Sysno.close, fd);
        }
    }
}
