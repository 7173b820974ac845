using Crisp.Images;
using Crisp.Images.Proto;
using Crisp.Linux;
using Microsoft.Win32.SafeHandles;

namespace Crisp.Resources.Memory;

/// <summary>Writes a task's stored private pages into its puppet: large reads from pages-N.img, then one
/// process_vm_writev per batch where the VMA is writable, pwrite to /proc/PID/mem where it is not
/// (read-only or PROT_NONE pages; the kernel's forced write copies them privately).</summary>
public sealed class PageFiller(int pid, PagemapReader pages, IReadOnlySet<vma_entry> writableForFill)
{
    public const int BatchBytes = 32 << 20;

    private readonly byte[] _buffer = GC.AllocateUninitializedArray<byte>(BatchBytes);
    private readonly List<(RemoteRange Range, long FileOffset)> _batch = [];
    private int _batchBytes;
    private bool _batchWritable;
    private SafeFileHandle? _mem;
    private SafeFileHandle? _file;

    public long BytesWritten { get; private set; }

    public void Fill(IEnumerable<vma_entry> vmas)
    {
        _file = File.OpenHandle(pages.PagesPath);
        try
        {
            foreach (var v in vmas)
            {
                if (!VmaStatus.Is(v.Status, VmaStatus.Regular) ||
                    !(VmaStatus.Is(v.Status, VmaStatus.AnonPrivate) || VmaStatus.Is(v.Status, VmaStatus.FilePrivate)))
                    continue;
                bool writable = (v.Prot & Mman.PROT_WRITE) != 0 || writableForFill.Contains(v);
                foreach (var (vaddr, length, offset) in pages.Resolve(v.Start, v.End))
                    Add(new RemoteRange(vaddr, length), offset, writable);
            }
            Flush();
        }
        finally
        {
            _file.Dispose();
            _mem?.Dispose();
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
        // Runs are in file order: read the batch with as few preads as the file layout allows.
        int at = 0;
        for (int i = 0; i < _batch.Count;)
        {
            int j = i;
            long len = (long)_batch[i].Range.Length;
            while (j + 1 < _batch.Count && _batch[j + 1].FileOffset == _batch[j].FileOffset + (long)_batch[j].Range.Length)
                len += (long)_batch[++j].Range.Length;
            ReadFile(_buffer.AsSpan(at, (int)len), _batch[i].FileOffset);
            at += (int)len;
            i = j + 1;
        }
        var data = _buffer.AsSpan(0, _batchBytes);
        if (_batchWritable)
            ProcessVm.WriteExactly(pid, _batch.Select(b => b.Range).ToArray(), data);
        else
        {
            _mem ??= File.OpenHandle($"/proc/{pid}/mem", FileMode.Open, FileAccess.Write);
            int offset = 0;
            foreach (var (range, _) in _batch)
            {
                RandomAccess.Write(_mem, data.Slice(offset, (int)range.Length), (long)range.Address);
                offset += (int)range.Length;
            }
        }
        BytesWritten += _batchBytes;
        _batch.Clear();
        _batchBytes = 0;
    }

    private void ReadFile(Span<byte> span, long offset)
    {
        int done = 0;
        while (done < span.Length)
        {
            int n = RandomAccess.Read(_file!, span[done..], offset + done);
            if (n <= 0)
                throw new ImageFormatException(pages.PagesPath, offset + done, "truncated pages file");
            done += n;
        }
    }
}
