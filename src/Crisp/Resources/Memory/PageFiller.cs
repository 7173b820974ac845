using Crisp.Images;
using Crisp.Images.Proto;
using Crisp.Linux;
using Microsoft.Win32.SafeHandles;

namespace Crisp.Resources.Memory;

/// <summary>Writes a task's stored private pages into its puppet: large reads from pages-N.img, then one
/// process_vm_writev per batch where the VMA is writable, pwrite to /proc/PID/mem where it is not
/// (read-only or PROT_NONE pages; the kernel's forced write copies them privately). A second thread
/// writes one batch into the puppet while the next is read from the file.
/// process_vm_writev rather than a read() by the puppet itself: the kernel then faults the puppet's
/// fresh pages in through get_user_pages, which is several times cheaper than faulting them one trap
/// at a time inside read() on virtual machines (docs/bench.md), and the extra copy is from page cache
/// into a warm buffer.</summary>
public sealed class PageFiller(int pid, PagemapReader pages, IReadOnlySet<vma_entry> writableForFill)
{
    public const int BatchBytes = PrivatePagesDump.BatchBytes;

    private readonly BatchBuffers _buffers = BatchBuffers.Take(BatchBytes);
    private List<(RemoteRange Range, long FileOffset)> _batch = [];
    private int _batchBytes;
    private bool _batchWritable;
    private SafeFileHandle? _mem;
    private Task _writing = Task.CompletedTask;
    private long _bytesWritten;

    /// <summary>Bytes written into the puppet so far (the count a stats counter reads).</summary>
    public long BytesWritten => Interlocked.Read(ref _bytesWritten);

    public void Fill(IEnumerable<vma_entry> vmas)
    {
        try
        {
            foreach (var v in vmas)
            {
                // The vdso and vvar are this kernel's own (moved into place): dumped vdso pages are not written.
                if (!VmaStatus.Is(v.Status, VmaStatus.Regular) || VmaStatus.Is(v.Status, VmaStatus.Vdso) || VmaStatus.Is(v.Status, VmaStatus.Vvar) ||
                    !(VmaStatus.Is(v.Status, VmaStatus.AnonPrivate) || VmaStatus.Is(v.Status, VmaStatus.FilePrivate)))
                    continue;
                bool writable = (v.Prot & Mman.PROT_WRITE) != 0 || writableForFill.Contains(v);
                foreach (var (vaddr, length, offset) in pages.Resolve(v.Start, v.End))
                    Add(new RemoteRange(vaddr, length), offset, writable);
            }
            Flush();
            _writing.GetAwaiter().GetResult();
        }
        finally
        {
            // A failed read must not leave the writer thread using the buffers we hand back.
            try { _writing.Wait(); } catch (AggregateException) { }
            _mem?.Dispose();
            _buffers.Return();
        }
    }

    private void Add(RemoteRange run, long fileOffset, bool writable)
    {
        if (writable != _batchWritable)
            Flush();
        _batchWritable = writable;
        while (run.Length > 0)
        {
            if (_batchBytes == BatchBytes)
                Flush();
            ulong take = Math.Min(run.Length, (ulong)(BatchBytes - _batchBytes));
            _batch.Add((run with { Length = take }, fileOffset));
            _batchBytes += (int)take;
            run = new RemoteRange(run.Address + take, run.Length - take);
            fileOffset += (long)take;
        }
    }

    private void Flush()
    {
        if (_batch.Count == 0)
            return;
        var buffer = _buffers.Next();
        // Runs are in file order: read the batch with as few preads as the file layout allows.
        int at = 0;
        for (int i = 0; i < _batch.Count;)
        {
            int j = i;
            long len = (long)_batch[i].Range.Length;
            while (j + 1 < _batch.Count && _batch[j + 1].FileOffset == _batch[j].FileOffset + (long)_batch[j].Range.Length)
                len += (long)_batch[++j].Range.Length;
            ReadFile(buffer.AsSpan(at, (int)len), _batch[i].FileOffset);
            at += (int)len;
            i = j + 1;
        }
        var ranges = _batch.Select(b => b.Range).ToArray();
        bool writable = _batchWritable;
        int bytes = _batchBytes;
        _writing.GetAwaiter().GetResult();   // the other buffer is free again, and batches land in order
        _writing = Task.Run(() => Write(buffer.AsSpan(0, bytes), ranges, writable));
        _batch = [];
        _batchBytes = 0;
    }

    private void Write(ReadOnlySpan<byte> data, RemoteRange[] ranges, bool writable)
    {
        if (writable)
            ProcessVm.WriteExactly(pid, ranges, data);
        else
        {
            _mem ??= File.OpenHandle($"/proc/{pid}/mem", FileMode.Open, FileAccess.Write);
            int offset = 0;
            foreach (var range in ranges)
            {
                RandomAccess.Write(_mem, data.Slice(offset, (int)range.Length), (long)range.Address);
                offset += (int)range.Length;
            }
        }
        Interlocked.Add(ref _bytesWritten, data.Length);
    }

    /// <summary>Through the pagemap's pages file: plain positioned reads, or chunks decrypted as they stream.</summary>
    private void ReadFile(Span<byte> span, long offset)
    {
        pages.ReadStored(span, offset);
        pages.Progress?.Add(span.Length);
    }
}
