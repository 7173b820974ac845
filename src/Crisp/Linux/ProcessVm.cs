using System.Runtime.InteropServices;

namespace Crisp.Linux;

/// <summary>process_vm_readv(2)/process_vm_writev(2): copy between our memory and another process's
/// without stopping it, many remote ranges per call.</summary>
public static unsafe partial class ProcessVm
{
    /// <summary>The kernel's limit on iovecs per call (UIO_MAXIOV).</summary>
    public const int IovMax = 1024;

    [LibraryImport("libc", EntryPoint = "process_vm_readv", SetLastError = true)]
    private static partial nint process_vm_readv(int pid, Iovec* local, nuint liovcnt, Iovec* remote, nuint riovcnt, nuint flags);

    [LibraryImport("libc", EntryPoint = "process_vm_writev", SetLastError = true)]
    private static partial nint process_vm_writev(int pid, Iovec* local, nuint liovcnt, Iovec* remote, nuint riovcnt, nuint flags);

    /// <summary>One raw process_vm_readv; returns bytes read (may be short).</summary>
    public static long Readv(int pid, ReadOnlySpan<Iovec> local, ReadOnlySpan<Iovec> remote)
    {
        fixed (Iovec* l = local)
        fixed (Iovec* r = remote)
            return SyscallException.Check((long)process_vm_readv(pid, l, (nuint)local.Length, r, (nuint)remote.Length, 0), "process_vm_readv");
    }

    /// <summary>One raw process_vm_writev; returns bytes written (may be short).</summary>
    public static long Writev(int pid, ReadOnlySpan<Iovec> local, ReadOnlySpan<Iovec> remote)
    {
        fixed (Iovec* l = local)
        fixed (Iovec* r = remote)
            return SyscallException.Check((long)process_vm_writev(pid, l, (nuint)local.Length, r, (nuint)remote.Length, 0), "process_vm_writev");
    }

    /// <summary>Reads the remote ranges, back to back, into <paramref name="buffer"/>. Batches up to
    /// IovMax ranges per call and resumes after partial transfers. Returns the number of bytes read:
    /// less than the total only when it hit memory it cannot read (the rest of the buffer is untouched).</summary>
    public static long Read(int pid, ReadOnlySpan<RemoteRange> ranges, Span<byte> buffer)
    {
        fixed (byte* p = buffer)
            return Transfer(pid, ranges, p, buffer.Length, write: false);
    }

    /// <summary>Writes <paramref name="data"/> to the remote ranges, back to back. Same batching and
    /// partial-transfer handling as <see cref="Read"/>; returns bytes written.</summary>
    public static long Write(int pid, ReadOnlySpan<RemoteRange> ranges, ReadOnlySpan<byte> data)
    {
        fixed (byte* p = data)
            return Transfer(pid, ranges, p, data.Length, write: true);
    }

    /// <summary>Like <see cref="Read"/> but throws EFAULT naming the first address it could not read.</summary>
    public static void ReadExactly(int pid, ReadOnlySpan<RemoteRange> ranges, Span<byte> buffer)
    {
        long n = Read(pid, ranges, buffer);
        if (n != TotalLength(ranges))
            throw new SyscallException($"process_vm_readv(pid {pid}, 0x{AddressAt(ranges, n):x})", Errnos.EFAULT);
    }

    /// <summary>Like <see cref="Write"/> but throws EFAULT naming the first address it could not write.</summary>
    public static void WriteExactly(int pid, ReadOnlySpan<RemoteRange> ranges, ReadOnlySpan<byte> data)
    {
        long n = Write(pid, ranges, data);
        if (n != TotalLength(ranges))
            throw new SyscallException($"process_vm_writev(pid {pid}, 0x{AddressAt(ranges, n):x})", Errnos.EFAULT);
    }

    /// <summary>Reads one remote range.</summary>
    public static void ReadExactly(int pid, ulong address, Span<byte> buffer)
        => ReadExactly(pid, [new RemoteRange(address, (ulong)buffer.Length)], buffer);

    /// <summary>Writes one remote range.</summary>
    public static void WriteExactly(int pid, ulong address, ReadOnlySpan<byte> data)
        => WriteExactly(pid, [new RemoteRange(address, (ulong)data.Length)], data);

    public static long TotalLength(ReadOnlySpan<RemoteRange> ranges)
    {
        long total = 0;
        foreach (var r in ranges)
            total += (long)r.Length;
        return total;
    }

    private static ulong AddressAt(ReadOnlySpan<RemoteRange> ranges, long offset)
    {
        foreach (var r in ranges)
        {
            if ((ulong)offset < r.Length)
                return r.Address + (ulong)offset;
            offset -= (long)r.Length;
        }
        return 0;
    }

    private static long Transfer(int pid, ReadOnlySpan<RemoteRange> ranges, byte* local, int localLength, bool write)
    {
        long total = TotalLength(ranges);
        if (total > localLength)
            throw new ArgumentException($"buffer holds {localLength} bytes, ranges need {total}");

        // 16 KiB at most: on the stack, so a batch moves without an allocation.
        Span<Iovec> remote = stackalloc Iovec[Math.Min(ranges.Length, IovMax)];
        long done = 0;
        int index = 0;        // first range not fully transferred
        ulong skip = 0;       // bytes of ranges[index] already transferred
        while (index < ranges.Length)
        {
            // Build a batch starting mid-range after a partial transfer; skip empty ranges.
            int count = 0;
            long batchBytes = 0;
            for (int i = index; i < ranges.Length && count < remote.Length; i++)
            {
                ulong off = i == index ? skip : 0;
                if (ranges[i].Length == off)
                    continue;
                remote[count++] = new Iovec((nint)(ranges[i].Address + off), (nuint)(ranges[i].Length - off));
                batchBytes += (long)(ranges[i].Length - off);
            }
            if (count == 0)
                break;

            Span<Iovec> localIov = [new Iovec((nint)(local + done), (nuint)batchBytes)];
            long n;
            fixed (Iovec* l = localIov)
            fixed (Iovec* r = remote)
            {
                n = write
                    ? (long)process_vm_writev(pid, l, 1, r, (nuint)count, 0)
                    : (long)process_vm_readv(pid, l, 1, r, (nuint)count, 0);
            }
            if (n < 0)
            {
                int errno = Marshal.GetLastPInvokeError();
                if (errno == Errnos.EFAULT)
                    return done;   // the first remote byte of this batch is not accessible
                if (errno == Errnos.EINTR)
                    continue;
                throw new SyscallException(write ? "process_vm_writev" : "process_vm_readv", errno);
            }
            if (n == 0)
                return done;   // the next remote byte is unmapped
            done += n;

            // Advance (index, skip) by n bytes.
            long left = n;
            while (left > 0 && index < ranges.Length)
            {
                ulong rest = ranges[index].Length - skip;
                if ((ulong)left >= rest)
                {
                    left -= (long)rest;
                    index++;
                    skip = 0;
                }
                else
                {
                    skip += (ulong)left;
                    left = 0;
                }
            }
            // A short transfer loops again from where it stopped: the next call either makes
            // progress or reports the fault at that exact address (0 bytes / EFAULT).
        }
        return done;
    }
}
