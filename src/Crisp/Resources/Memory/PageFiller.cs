using Crisp.Images;
using Crisp.Images.Pages;
using Crisp.Images.Proto;
using Crisp.Linux.Proc;
using Crisp.Linux;
using Microsoft.Win32.SafeHandles;

namespace Crisp.Resources.Memory;

/// <summary>Writes a task's stored private pages into its puppet: the pagemap says which ranges are stored, the
/// page source (<see cref="IPageSource"/>: the images' pages files and parent chain, or a page server) fills each
/// batch with their bytes in as few reads as it can, then one process_vm_writev per batch where the VMA is writable,
/// pwrite to /proc/PID/mem where it is not (read-only or PROT_NONE pages; the kernel's forced write copies them
/// privately). A second thread writes batches into the puppet while the next are read (<see cref="PagePipe"/>).
/// process_vm_writev rather than a read() by the puppet itself: the kernel then faults the puppet's fresh pages in
/// through get_user_pages, which is several times cheaper than faulting them one trap at a time inside read() on
/// virtual machines (docs/bench.md), and the extra copy is from page cache into a warm buffer.</summary>
/// <param name="hostPid">The puppet, as crisp sees it.</param>
/// <param name="pid">The task as the images number it (what the source is asked for).</param>
public sealed class PageFiller(int hostPid, int pid, PagemapReader pagemap, IPageSource source, IReadOnlySet<vma_entry> writableForFill, PageBatchPool batches)
{
    private SafeFileHandle? _mem;
    private long _bytesWritten;

    /// <summary>Bytes written into the puppet so far (the count a stats counter reads).</summary>
    public long BytesWritten => Interlocked.Read(ref _bytesWritten);

    public void Fill(IEnumerable<vma_entry> vmas)
    {
        var pipe = new PagePipe(batches, Read, Write);
        try
        {
            foreach (var v in vmas)
            {
                // The vdso and vvar are this kernel's own (moved into place): dumped vdso pages are not written.
                bool aio = v.Status == VmaStatus.AioRing;   // into the temporary mapping MapAll made
                if (!aio && (!VmaStatus.Is(v.Status, VmaStatus.Regular) || VmaStatus.Is(v.Status, VmaStatus.Vdso) || VmaStatus.Is(v.Status, VmaStatus.Vvar) ||
                    !(VmaStatus.Is(v.Status, VmaStatus.AnonPrivate) || VmaStatus.Is(v.Status, VmaStatus.FilePrivate))))
                    continue;
                bool writable = aio || (v.Prot & Mman.PROT_WRITE) != 0 || writableForFill.Contains(v);
                foreach (var (vaddr, length, _, _) in pagemap.Resolve(v.Start, v.End))
                    pipe.Add(new RemoteRange(vaddr, length), writable);
            }
            pipe.Complete();
        }
        finally
        {
            pipe.Dispose();   // first: a failed read must not leave the writer thread using the batches
            _mem?.Dispose();
        }
    }

    /// <summary>Fills a batch from the page source (on the restoring thread, while the pipe's thread writes the
    /// batches before it into the puppet).</summary>
    private void Read(PageBatch batch) => source.Read(pid, batch.Ranges, batch.Data);

    private void Write(PageBatch batch)
    {
        var data = batch.Data;
        if (batch.Accessible)
            ProcessVm.WriteExactly(hostPid, batch.Ranges, data);
        else
        {
            _mem ??= File.OpenHandle(Procfs.Host.Path(hostPid, "mem"), FileMode.Open, FileAccess.Write);
            int offset = 0;
            foreach (var range in batch.Ranges)
            {
                RandomAccess.Write(_mem, data.Slice(offset, (int)range.Length), (long)range.Address);
                offset += (int)range.Length;
            }
        }
        Interlocked.Add(ref _bytesWritten, data.Length);
    }
}
