using Crisp.Images;
using Crisp.Images.Proto;
using Crisp.Linux;
using Crisp.Restore;

namespace Crisp.Resources.Memory;

/// <summary>Fills the VMAs a task inherited from its parent's puppet (<see cref="CowPlan"/>) without breaking the
/// sharing: each stored page is compared with what the task holds (the parent's page) and written only where it
/// differs. The task's pages are read through /proc/PID/mem, not process_vm_readv: the latter pins them, and the
/// kernel unshares (copies) a shared anonymous page it is asked to pin, which would undo the very sharing kept here; pages the task has none of in its images but the
/// parent filled are dropped (MADV_DONTNEED), so they read as zero as they did (CRIU's restore_priv_vma_content).</summary>
public sealed class CowFiller(RestoreTask task, PagemapReader pages, (MappedPages Image, MappedPages Current) buffers)
{
    private const int PageSize = PagemapWriter.PageSize;
    /// <summary>Bytes compared at a time: the size of each of the two buffers (the restore's, reused task after task).</summary>
    public const int Chunk = 1 << 20;

    /// <summary>Pages compared, left shared, written, dropped.</summary>
    public long Compared { get; private set; }
    public long Shared { get; private set; }
    public long Written { get; private set; }
    public long Dropped { get; private set; }

    /// <param name="parentPresent">The pages the parent's puppet held when the task was cloned (its own stored runs).</param>
    public void Fill(IEnumerable<vma_entry> vmas, IReadOnlyList<PagemapReader.Run> parentPresent)
    {
        var image = buffers.Image.Span(Chunk);
        var current = buffers.Current.Span(Chunk);
        int pid = task.Puppet.Pid;
        using var mem = File.OpenHandle(Linux.Proc.Procfs.Host.Path(pid, "mem"), FileMode.Open, FileAccess.Read);
        foreach (var v in vmas)
        {
            ulong covered = v.Start;
            foreach (var (vaddr, length, offset, source) in pages.Resolve(v.Start, v.End))
            {
                Drop(covered, vaddr, parentPresent);
                for (ulong done = 0; done < length; done += Chunk)
                {
                    int n = (int)Math.Min(Chunk, length - done);
                    pages.ReadStored(image[..n], offset + (long)done, source);
                    pages.Progress?.Add(n);
                    ReadExactly(mem, vaddr + done, current[..n]);
                    WriteDiffering(pid, vaddr + done, image[..n], current[..n]);
                }
                covered = vaddr + length;
            }
            Drop(covered, v.End, parentPresent);
        }
    }

    private void ReadExactly(Microsoft.Win32.SafeHandles.SafeFileHandle mem, ulong at, Span<byte> buffer)
    {
        for (int done = 0; done < buffer.Length;)
        {
            int n = RandomAccess.Read(mem, buffer[done..], (long)at + done);
            if (n <= 0)
                throw new CrispException($"task {task.Pid}: reading its memory at 0x{at + (ulong)done:x} through /proc/PID/mem gave {n} bytes");
            done += n;
        }
    }

    /// <summary>Writes the runs of pages of <paramref name="image"/> that differ from <paramref name="current"/>.</summary>
    private void WriteDiffering(int pid, ulong at, ReadOnlySpan<byte> image, ReadOnlySpan<byte> current)
    {
        int pagesIn = image.Length / PageSize;
        Compared += pagesIn;
        for (int i = 0; i < pagesIn;)
        {
            if (image.Slice(i * PageSize, PageSize).SequenceEqual(current.Slice(i * PageSize, PageSize)))
            {
                Shared++;
                i++;
                continue;
            }
            int j = i + 1;
            while (j < pagesIn && !image.Slice(j * PageSize, PageSize).SequenceEqual(current.Slice(j * PageSize, PageSize)))
                j++;
            ProcessVm.WriteExactly(pid, at + (ulong)(i * PageSize), image[(i * PageSize)..(j * PageSize)]);
            Written += j - i;
            i = j;
        }
    }

    /// <summary>[start, end) holds none of the task's pages: what the parent left there goes (one call per gap).</summary>
    private void Drop(ulong start, ulong end, IReadOnlyList<PagemapReader.Run> parentPresent)
    {
        if (start >= end)
            return;
        // The runs are sorted by address: the first that ends after start, then on while they begin before end.
        int lo = 0, hi = parentPresent.Count;
        while (lo < hi)
        {
            int mid = (lo + hi) >>> 1;
            if (parentPresent[mid].End <= start)
                lo = mid + 1;
            else
                hi = mid;
        }
        long held = 0;
        for (int i = lo; i < parentPresent.Count && parentPresent[i].Vaddr < end; i++)
            held += (long)((Math.Min(parentPresent[i].End, end) - Math.Max(parentPresent[i].Vaddr, start)) / PageSize);
        if (held == 0)
            return;
        task.Call($"madvise(0x{start:x}, MADV_DONTNEED)", Sysno.madvise, (long)start, (long)(end - start), Mman.MADV_DONTNEED);
        Dropped += held;
    }
}
