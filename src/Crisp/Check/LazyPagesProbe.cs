using System.Runtime.InteropServices;
using Crisp.Linux;
using Crisp.Resources.Memory.Lazy;

namespace Crisp.Check;

/// <summary>lazy_pages (crisp's name; CRIU answers this through uffd/uffd-noncoop): what restore --lazy-pages and
/// `crisp lazy-pages` do, on a page of crisp's own — a userfaultfd that also handles kernel-mode faults, with the
/// fork, remap, unmap and remove events, registered MODE_MISSING on an empty page, which UFFDIO_COPY then fills.</summary>
public sealed unsafe class LazyPagesProbe : IFeatureProbe
{
    public string Name => "lazy_pages";
    public string? CriuFeature => null;
    public bool Required => false;

    public ProbeResult Probe()
    {
        nint page = Mman.Map(0, Mman.PageSize, Mman.PROT_READ | Mman.PROT_WRITE, Mman.MAP_PRIVATE | Mman.MAP_ANONYMOUS);
        try
        {
            // The userfaultfd is closed before the page is unmapped: with the unmap event asked for, munmap of a
            // registered page waits until someone reads the event.
            return Check(page);
        }
        finally
        {
            Mman.Unmap(page, Mman.PageSize);
        }
    }

    private static ProbeResult Check(nint page)
    {
        UnixFd uffd;
        try
        {
            (uffd, _) = Uffd.Open(LazyRegistration.Features);
        }
        catch (SyscallException e)
        {
            return ProbeResult.Missing(e.Message);
        }
        using (uffd)
        {
            ulong* reg = stackalloc ulong[4] { (ulong)page, (ulong)Mman.PageSize, Userfaultfd.REGISTER_MODE_MISSING, 0 };
            long r = RawSyscall.TryCall(Sysno.ioctl, uffd.Fd, Userfaultfd.UFFDIO_REGISTER, (long)reg);
            if (r < 0)
                return ProbeResult.Missing($"UFFDIO_REGISTER MODE_MISSING: {Errnos.Describe((int)-r)}");
            var data = new byte[Mman.PageSize];
            data.AsSpan().Fill(0x5a);
            long copied = Userfaultfd.Copy(uffd.Fd, (ulong)page, data);
            if (copied != Mman.PageSize)
                return ProbeResult.Missing($"UFFDIO_COPY: {(copied < 0 ? Errnos.Describe((int)-copied) : $"{copied} bytes")}");
            return Marshal.ReadByte(page, 100) == 0x5a
                ? ProbeResult.Supported("userfaultfd MODE_MISSING + UFFDIO_COPY, with the fork, remap, unmap and remove events")
                : ProbeResult.Missing("UFFDIO_COPY did not fill the page");
        }
    }
}
