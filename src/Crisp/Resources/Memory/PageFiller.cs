using Crisp.Images;
using Crisp.Images.Proto;
using Crisp.Linux.Proc;
using Crisp.Linux;
using Microsoft.Win32.SafeHandles;

namespace Crisp.Resources.Memory;

/// <summary>Writes a task's stored private pages into its puppet: large reads from pages-N.img, then one
/// process_vm_writev per batch where the VMA is writable, pwrite to /proc/PID/mem where it is not
/// (read-only or PROT_NONE pages; the kernel's forced write copies them privately). A second thread
/// writes batches into the puppet while the next are read from the file (<see cref="PagePipe"/>).
/// process_vm_writev rather than a read() by the puppet itself: the kernel then faults the puppet's
/// fresh pages in through get_user_pages, which is several times cheaper than faulting them one trap
/// at a time inside read() on virtual machines (docs/bench.md), and the extra copy is from page cache
/// into a warm buffer.</summary>
public sealed class PageFiller(int pid, PagemapReader pages, IReadOnlySet<vma_entry> writableForFill, PageBatchPool batches)
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
                foreach (var (vaddr, length, offset, source) in pages.Resolve(v.Start, v.End))
                    pipe.Add(new RemoteRange(vaddr, length), writable, offset, source);
            }
            pipe.Complete();
        }
        finally
        {
            pipe.Dispose();   // first: a failed read must not leave the writer thread using the batches
            _mem?.Dispose();
        }
    }

    /// <summary>Reads a batch from the page source (on the restoring thread, while the pipe's thread writes the
    /// batches before it into the puppet). Runs are in file order: as few preads as the file layout allows.</summary>
    private void Read(PageBatch batch)
    {
        var ranges = batch.Ranges;
        var offsets = batch.FileOffsets;
        var sources = batch.Sources;
        int at = 0;
        for (int i = 0; i < ranges.Length;)
        {
            int j = i;
            long len = (long)ranges[i].Length;
            while (j + 1 < ranges.Length && sources[j + 1] == sources[i] && offsets[j + 1] == offsets[j] + (long)ranges[j].Length)
                len += (long)ranges[++j].Length;
            pages.ReadStored(batch.Buffer.AsSpan(at, (int)len), offsets[i], sources[i]);
            pages.Progress?.Add((int)len);
            at += (int)len;
            i = j + 1;
        }
    }

    private void Write(PageBatch batch)
    {
        var data = batch.Data;
        if (batch.Accessible)
            ProcessVm.WriteExactly(pid, batch.Ranges, data);
        else
        {
            _mem ??= File.OpenHandle(Procfs.Host.Path(pid, "mem"), FileMode.Open, FileAccess.Write);
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
