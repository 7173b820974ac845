using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Crisp.Linux;
using Crisp.Linux.Proc;

namespace Crisp.Tests.Linux;

public unsafe class BindingTests
{
    [Fact]
    public void KernelStructSizes()
    {
        Assert.Equal(88, sizeof(CloneArgs));
        Assert.Equal(Clone3.CLONE_ARGS_SIZE_VER2, sizeof(CloneArgs));
        Assert.Equal(8, sizeof(SockFilter));
        Assert.Equal(16, sizeof(SockFprog));
        Assert.Equal(128, sizeof(SigInfo));
        Assert.Equal(16, sizeof(Rlimit));
        Assert.Equal(16, sizeof(Iovec));
        Assert.Equal(104, sizeof(PrctlMmMap));
        Assert.Equal(56, sizeof(MsgHdr));
        Assert.Equal(16, sizeof(CmsgHdr));
        Assert.Equal(8, sizeof(CapUserHeader));
        Assert.Equal(12, sizeof(CapUserData));
        Assert.Equal(64, (int)Marshal.OffsetOf<CloneArgs>(nameof(CloneArgs.SetTid)));
    }

    [Fact]
    public void SigInfoAccessorsUseKernelOffsets()
    {
        var si = new SigInfo { Signo = Signals.SIGCHLD, Errno = 0, Code = SigInfo.CLD_EXITED, Pid = 1234, Uid = 1000, Status = 7 };
        var bytes = si.ToArray();
        Assert.Equal(128, bytes.Length);
        Assert.Equal(Signals.SIGCHLD, BitConverter.ToInt32(bytes, 0));
        Assert.Equal(SigInfo.CLD_EXITED, BitConverter.ToInt32(bytes, 8));
        Assert.Equal(1234, BitConverter.ToInt32(bytes, 16));
        Assert.Equal(1000, BitConverter.ToInt32(bytes, 20));
        Assert.Equal(7, BitConverter.ToInt32(bytes, 24));
        var back = SigInfo.FromBytes(bytes);
        Assert.Equal(1234, back.Pid);
        Assert.Equal(7, back.Status);
        back.Addr = 0xdeadbeef000;
        Assert.Equal(0xdeadbeef000UL, back.Addr);
    }

    [Fact]
    public void MemfdMmapRoundTrip()
    {
        using var fd = Memfd.Create("crisp-mmap");
        FileIo.Truncate(fd.Fd, Mman.PageSize);
        nint p = Mman.Map(0, Mman.PageSize, Mman.PROT_READ | Mman.PROT_WRITE, Mman.MAP_SHARED, fd.Fd);
        try
        {
            ((byte*)p)[100] = 0x5a;
            Span<byte> buf = stackalloc byte[1];
            Assert.Equal(1, FileIo.PRead(fd.Fd, buf, 100));
            Assert.Equal(0x5a, buf[0]);

            FileIo.PWriteExactly(fd.Fd, "crisp"u8, 200);
            Assert.Equal("crisp"u8.ToArray(), new ReadOnlySpan<byte>((byte*)p + 200, 5).ToArray());

            Mman.Protect(p, Mman.PageSize, Mman.PROT_READ);
            Mman.Advise(p, Mman.PageSize, Mman.MADV_DONTNEED);
            Assert.Equal(0x5a, ((byte*)p)[100]); // shared mapping: contents come back from the memfd
        }
        finally
        {
            Mman.Unmap(p, Mman.PageSize);
        }
        Assert.Equal(4096, FileIo.Seek(fd.Fd, 0, FileIo.SEEK_END));
    }

    [Fact]
    public void ScmRightsPassesAnFd()
    {
        var (a, b) = Sockets.SocketPair();
        using (a)
        using (b)
        using (var memfd = Memfd.Create("crisp-scm"))
        using (var extra = FileIo.Dup(memfd.Fd))
        {
            Sockets.SendFds(a.Fd, [memfd.Fd, extra.Fd], "x"u8);
            Span<byte> payload = stackalloc byte[1];
            var got = Sockets.ReceiveFds(b.Fd, 4, payload);
            Assert.Equal((byte)'x', payload[0]);
            Assert.Equal(2, got.Length);
            using var received = new UnixFd(got[0]);
            using var received2 = new UnixFd(got[1]);
            Assert.NotEqual(memfd.Fd, received.Fd);

            FileIo.WriteExactly(received.Fd, "through"u8);
            var buf = new byte[7];
            Assert.Equal(7, FileIo.PRead(memfd.Fd, buf, 0));
            Assert.Equal("through"u8.ToArray(), buf);
            Assert.NotEqual(0, FdInfo.Read(0, received.Fd).Flags & FileIo.O_CLOEXEC);
        }
    }

    [Fact]
    public void ScmRightsOnStreamSocketWithDefaultPayload()
    {
        var (a, b) = Sockets.SocketPair(Sockets.SOCK_STREAM);
        using (a)
        using (b)
        using (var memfd = Memfd.Create("crisp-scm-stream"))
        {
            Sockets.SendFds(a.Fd, [memfd.Fd]);
            var got = Sockets.ReceiveFds(b.Fd, Sockets.MaxFdsPerMessage);
            using var received = new UnixFd(Assert.Single(got));
            Assert.True(Kcmp.SameFile(Environment.ProcessId, memfd.Fd, Environment.ProcessId, received.Fd));
        }
    }

    [Fact]
    public void ProcessVmReadsAndWritesOwnMemoryInBatches()
    {
        var src = GC.AllocateArray<byte>(3000 * 8, pinned: true);
        for (int i = 0; i < src.Length; i++)
            src[i] = (byte)(i * 7);
        ulong b = (ulong)Unsafe.AsPointer(ref src[0]);
        // 3000 ranges (more than one batch of IovMax), every other 8-byte slot, in reverse order.
        var ranges = new RemoteRange[1500];
        for (int i = 0; i < ranges.Length; i++)
            ranges[i] = new RemoteRange(b + (ulong)((ranges.Length - 1 - i) * 16), 8);
        var dst = new byte[ranges.Length * 8];
        ProcessVm.ReadExactly(Environment.ProcessId, ranges, dst);
        for (int i = 0; i < ranges.Length; i++)
            Assert.Equal(src.AsSpan((ranges.Length - 1 - i) * 16, 8).ToArray(), dst.AsSpan(i * 8, 8).ToArray());

        var data = new byte[ranges.Length * 8];
        Array.Fill(data, (byte)0xee);
        ProcessVm.WriteExactly(Environment.ProcessId, ranges, data);
        Assert.Equal(0xee, src[0]);
        Assert.Equal(0xee, src[16]);
        Assert.Equal((byte)(8 * 7), src[8]);
        GC.KeepAlive(src);
    }

    [Fact]
    public void ProcessVmStopsAtInaccessibleMemory()
    {
        ulong page = Mman.PageSize;
        nint map = Mman.Map(0, 2 * page, Mman.PROT_READ | Mman.PROT_WRITE, Mman.MAP_PRIVATE | Mman.MAP_ANONYMOUS);
        // PROT_NONE rather than munmap: another thread could map something into a hole.
        Mman.Protect(map + (nint)page, page, Mman.PROT_NONE);
        try
        {
            ((byte*)map)[5] = 9;
            ulong a = (ulong)map;
            var buf = new byte[3 * page];
            RemoteRange[] ranges = [new(a, page), new(a + page, page), new(a, page)];
            long n = ProcessVm.Read(Environment.ProcessId, ranges, buf);
            Assert.Equal((long)page, n);
            Assert.Equal(9, buf[5]);
            Assert.Equal(0, ProcessVm.Read(Environment.ProcessId, [new RemoteRange(a + page, 16)], buf));
            var e = Assert.Throws<SyscallException>(() => ProcessVm.ReadExactly(Environment.ProcessId, ranges, buf));
            Assert.Equal(Errnos.EFAULT, e.Errno);
            Assert.Contains($"0x{a + page:x}", e.Message);
        }
        finally
        {
            Mman.Unmap(map, 2 * page);
        }
    }

    [Fact]
    public void PidfdOpenAndGetFdOnSelf()
    {
        using var pidfd = PidFd.Open(Environment.ProcessId);
        Assert.False(pidfd.IsInvalid);
        using var memfd = Memfd.Create("crisp-pidfd");
        using var copy = pidfd.GetFd(memfd.Fd);
        Assert.NotEqual(memfd.Fd, copy.Fd);
        Assert.True(Kcmp.SameFile(Environment.ProcessId, memfd.Fd, Environment.ProcessId, copy.Fd));
        pidfd.SendSignal(0);
        Assert.StartsWith("anon_inode:[pidfd]", ProcFds.Read(0).Single(f => f.Fd == pidfd.Fd).Target);
    }

    [Fact]
    public void KcmpTellsDupFromReopen()
    {
        using var a = Memfd.Create("crisp-kcmp");
        using var dup = FileIo.Dup(a.Fd);
        using var other = Memfd.Create("crisp-kcmp-2");
        int me = Environment.ProcessId;
        Assert.True(Kcmp.SameFile(me, a.Fd, me, dup.Fd));
        Assert.False(Kcmp.SameFile(me, a.Fd, me, other.Fd));
        Assert.Equal(0, Kcmp.Compare(me, me, Kcmp.KCMP_VM));
        var e = Assert.Throws<SyscallException>(() => Kcmp.Compare(me, me, Kcmp.KCMP_FILE, 1_000_000, 0));
        Assert.Equal(Errnos.EBADF, e.Errno);
        Assert.StartsWith("kcmp", e.Message);
    }

    [Fact]
    public void Clone3IsPresent()
    {
        Assert.True(Clone3.IsSupported());
        CloneArgs args = default;
        Assert.Equal(-Errnos.EINVAL, Clone3.TryRaw(&args, 8));
    }

    [Fact]
    public void PrctlQueries()
    {
        int tid = ProcessIds.Tid;
        string comm = File.ReadAllText($"/proc/self/task/{tid}/comm").TrimEnd('\n');
        Assert.Equal(comm, Prctl.GetName());
        Assert.Equal((uint)sizeof(PrctlMmMap), Prctl.GetMmMapSize());
        var status = ProcStatus.Read(0);
        Assert.Equal(status.NoNewPrivs, Prctl.GetNoNewPrivs());
        for (int cap = 0; cap <= Capabilities.CAP_LAST_CAP; cap++)
        {
            Assert.Equal((status.CapBnd >> cap & 1) != 0, Prctl.CapBoundingSetHas(cap));
            Assert.Equal((status.CapAmb >> cap & 1) != 0, Prctl.AmbientHas(cap));
        }
        Assert.InRange(Prctl.GetDumpable(), 0, 2);
        Assert.NotEqual(0UL, Prctl.GetTidAddress());
        _ = Prctl.GetSecureBits();
        _ = Prctl.GetChildSubreaper();
        Assert.InRange(Prctl.GetParentDeathSignal(), 0, Signals.SIGRTMAX);
    }

    [Fact]
    public void PrctlSetNameOnOwnThread()
    {
        string? seen = null;
        var t = new Thread(() =>
        {
            Prctl.SetName("crisp-named");
            seen = File.ReadAllText($"/proc/self/task/{ProcessIds.Tid}/comm").TrimEnd('\n');
        });
        t.Start();
        t.Join();
        Assert.Equal("crisp-named", seen);
    }

    [Fact]
    public void SeccompActionsAvailable()
    {
        Assert.True(Seccomp.IsActionAvailable(Seccomp.SECCOMP_RET_ALLOW));
        Assert.True(Seccomp.IsActionAvailable(Seccomp.SECCOMP_RET_KILL_PROCESS));
        Assert.False(Seccomp.IsActionAvailable(0x12340000));
        Assert.Equal(new SockFilter(0x06, 0, 0, Seccomp.SECCOMP_RET_ALLOW), SockFilter.Return(Seccomp.SECCOMP_RET_ALLOW));
    }

    [Fact]
    public void RlimitsAffinityAndSignals()
    {
        var nofile = Rlimits.Get(Environment.ProcessId, Rlimits.RLIMIT_NOFILE);
        Assert.True(nofile.Cur <= nofile.Max);
        Assert.Equal(nofile, Rlimits.Set(0, Rlimits.RLIMIT_NOFILE, nofile));

        var mask = Sched.GetAffinity(0);
        var cpus = Sched.Cpus(mask);
        Assert.NotEmpty(cpus);
        Sched.SetAffinity(0, mask);
        Assert.Equal(mask, Sched.GetAffinity(0));

        Assert.Equal(Environment.ProcessId, ProcessIds.Pid);
        Assert.True(Signals.Exists(ProcessIds.Pid));
        Signals.Kill(ProcessIds.Pid, 0);
        Signals.TgKill(ProcessIds.Pid, ProcessIds.Tid, 0);
        Assert.Equal(Errnos.ESRCH, Assert.Throws<SyscallException>(() => Signals.Kill(int.MaxValue, 0)).Errno);
    }

    [Fact]
    public void CloseRangeClosesOrMarksCloexec()
    {
        using var a = Memfd.Create("crisp-cr");
        using var plain = FileIo.Dup(a.Fd); // dup() drops O_CLOEXEC
        Assert.Equal(0, FdInfo.Read(0, plain.Fd).Flags & FileIo.O_CLOEXEC);
        CloseRange.Close((uint)plain.Fd, (uint)plain.Fd, CloseRange.CLOSE_RANGE_CLOEXEC);
        Assert.NotEqual(0, FdInfo.Read(0, plain.Fd).Flags & FileIo.O_CLOEXEC);

        using var b = Memfd.Create("crisp-cr-closed");
        int fd = b.Detach();
        CloseRange.Close((uint)fd, (uint)fd);
        // Tests run in parallel: the number may already be reused, but not by our memfd.
        Assert.DoesNotContain(ProcFds.Read(0), f => f.Fd == fd && f.Target.Contains("crisp-cr-closed"));
    }

    [Fact]
    public void OpenReadWriteSeek()
    {
        string path = Path.Combine(Path.GetTempPath(), $"crisp-io-{Guid.NewGuid():N}");
        try
        {
            using (var fd = FileIo.Open(path, FileIo.O_RDWR | FileIo.O_CREAT | FileIo.O_EXCL, 0x180 /* 0600 */))
            {
                FileIo.WriteExactly(fd.Fd, "0123456789"u8);
                Assert.Equal(3, FileIo.Seek(fd.Fd, 3, FileIo.SEEK_SET));
                var buf = new byte[4];
                Assert.Equal(4, FileIo.Read(fd.Fd, buf));
                Assert.Equal("3456"u8.ToArray(), buf);
            }
            using var dir = FileIo.Open(Path.GetDirectoryName(path)!, FileIo.O_RDONLY | FileIo.O_DIRECTORY);
            using var again = FileIo.OpenAt(dir.Fd, Path.GetFileName(path), FileIo.O_RDONLY);
            var all = new byte[16];
            Assert.Equal(10, FileIo.PReadFully(again.Fd, all, 0));
            var e = Assert.Throws<SyscallException>(() => FileIo.Open(path + ".missing", FileIo.O_RDONLY));
            Assert.Equal(Errnos.ENOENT, e.Errno);
            Assert.Contains(".missing", e.Message);
        }
        finally
        {
            File.Delete(path);
        }
    }
}
