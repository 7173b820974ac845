using Crisp.Images;
using Crisp.Images.Proto;
using Google.Protobuf;

namespace Crisp.Tests.Images;

/// <summary>One image written by a test: its file, entries and any extra payloads.</summary>
internal sealed record Sample(ImageFile File, IReadOnlyList<IMessage> Entries, IReadOnlyList<byte[]>? Extras = null);

/// <summary>Realistic image contents, shaped like what CRIU dumps for a small x86-64 process.</summary>
internal static class SampleImages
{
    public const int Pid = 4242;

    public static Sample Write(ImageDirectory dir, Sample s)
    {
        using var w = dir.CreateWriter(s.File);
        for (int i = 0; i < s.Entries.Count; i++)
            w.Write(s.Entries[i], s.Extras is null ? ReadOnlySpan<byte>.Empty : s.Extras[i]);
        return s;
    }

    public static IEnumerable<Sample> All() =>
    [
        Inventory(), Pstree(), Core(), Ids(), Mm(), Creds(), Fs(), Fdinfo(), Files(), RegFiles(),
        Pipes(), PipesData(), Sigacts(), Rseq(), Seccomp(), Itimers(), PosixTimers(), Tty(), TtyInfo(),
        TtyData(), Rlimit(),
    ];

    public static Sample Inventory() => new(ImageFile.Inventory,
    [
        new inventory_entry
        {
            ImgVersion = 2, FdinfoPerId = true, NsPerId = true, RootCgSet = 1, Lsmtype = lsmtype.NoLsm,
            DumpUptime = 123456789012, RootIds = Kobj(),
        },
    ]);

    public static Sample Pstree() => new(ImageFile.Pstree,
    [
        new pstree_entry { Pid = Pid, Ppid = 0, Pgid = Pid, Sid = 1000, Threads = { Pid, Pid + 1 } },
        new pstree_entry { Pid = Pid + 5, Ppid = Pid, Pgid = Pid, Sid = 1000, Threads = { Pid + 5 } },
    ]);

    public static task_kobj_ids_entry Kobj() => new()
    {
        VmId = 1, FilesId = 2, FsId = 3, SighandId = 4, PidNsId = 5, NetNsId = 6, IpcNsId = 7, UtsNsId = 8,
        MntNsId = 9, UserNsId = 10, CgroupNsId = 11, TimeNsId = 12,
    };

    public static Sample Ids() => new(ImageFile.Ids(Pid), [Kobj()]);

    public static creds_entry CredsEntry() => new()
    {
        Uid = 1000, Gid = 1000, Euid = 1000, Egid = 1000, Suid = 1000, Sgid = 1000, Fsuid = 1000, Fsgid = 1000,
        CapInh = { 0, 0 }, CapPrm = { 0, 0 }, CapEff = { 0, 0 }, CapBnd = { 0xffffffff, 0x1ff },
        Secbits = 0, Groups = { 4, 24, 27, 1000 },
    };

    public static Sample Creds() => new(ImageFile.Creds(Pid), [CredsEntry()]);

    public static byte[] Siginfo(int signo)
    {
        var b = new byte[128];
        BitConverter.TryWriteBytes(b.AsSpan(0), signo);
        BitConverter.TryWriteBytes(b.AsSpan(8), -6); // SI_TKILL
        BitConverter.TryWriteBytes(b.AsSpan(16), Pid);
        return b;
    }

    public static Sample Core() => new(ImageFile.Core(Pid), [CoreEntry()]);

    public static core_entry CoreEntry()
    {
        var regs = new user_x86_regs_entry
        {
            R15 = 0, R14 = 0x7ffd5a1c2e40, R13 = 1, R12 = 0x401020, Bp = 0x7ffd5a1c2d70, Bx = 0, R11 = 0x246,
            R10 = 8, R9 = 0, R8 = 0, Ax = unchecked((ulong)-4), Cx = 0x7f3b1c8e5b7a, Dx = 0, Si = 0x7ffd5a1c2d50,
            Di = 0x7ffd5a1c2d50, OrigAx = 35, Ip = 0x7f3b1c8e5b7a, Cs = 0x33, Flags = 0x246, Sp = 0x7ffd5a1c2d48,
            Ss = 0x2b, FsBase = 0x7f3b1ca6a740, GsBase = 0, Ds = 0, Es = 0, Fs = 0, Gs = 0, Mode = user_x86_regs_mode.Native,
        };
        var fp = new user_x86_fpregs_entry { Cwd = 0x37f, Swd = 0, Twd = 0, Fop = 0, Rip = 0, Rdp = 0, Mxcsr = 0x1f80, MxcsrMask = 0x2ffff };
        for (int i = 0; i < 32; i++) fp.StSpace.Add(0);
        for (int i = 0; i < 64; i++) fp.XmmSpace.Add((uint)(i * 0x01010101));
        for (int i = 0; i < 24; i++) fp.Padding.Add(0);
        fp.Xsave = new user_x86_xsave_entry { XstateBv = 0x2e7, YmmhSpace = { 1, 2, 3, 4 }, Pkru = { 0x55555554 } };
        var tls = new user_desc_t
        {
            EntryNumber = 12, BaseAddr = 0, Limit = 0, Seg32Bit = false, ContentsH = false, ContentsL = false,
            ReadExecOnly = true, LimitInPages = false, SegNotPresent = true, Usable = false,
        };
        var timers = new task_timers_entry
        {
            Real = new itimer_entry { Isec = 0, Iusec = 0, Vsec = 0, Vusec = 0 },
            Virt = new itimer_entry { Isec = 1, Iusec = 500000, Vsec = 0, Vusec = 250000 },
            Prof = new itimer_entry { Isec = 0, Iusec = 0, Vsec = 0, Vusec = 0 },
        };
        var rl = new task_rlimits_entry();
        for (int i = 0; i < 16; i++)
            rl.Rlimits.Add(new rlimit_entry { Cur = i == 7 ? 1024UL : ulong.MaxValue, Max = i == 7 ? 524288UL : ulong.MaxValue });
        return new core_entry
        {
            Mtype = core_entry.Types.march.X8664,
            ThreadInfo = new thread_info_x86 { ClearTidAddr = 0x7f3b1ca6aa10, Gpregs = regs, Fpregs = fp, Tls = { tls } },
            Tc = new task_core_entry
            {
                TaskState = 1, ExitCode = 0, Personality = 0, Flags = 0x400140, BlkSigset = 0x10000, Comm = "sleepy\"wl\u00e9",
                Timers = timers, Rlimits = rl, CgSet = 1, SignalsS = new signal_queue_entry { Signals = { new siginfo_entry { Siginfo = ByteString.CopyFrom(Siginfo(10)) } } },
                Loginuid = uint.MaxValue, OomScoreAdj = -100, ChildSubreaper = false, BlkSigsetExtended = 0,
            },
            ThreadCore = new thread_core_entry
            {
                FutexRla = 0x7f3b1ca6aa20, FutexRlaLen = 24, SchedNice = -5, SchedPolicy = 0, SchedPrio = 0,
                BlkSigset = 0x4000, Sas = new thread_sas_entry { SsSp = 0x7f3b1c000000, SsSize = 8192, SsFlags = 0 },
                PdeathSig = 9, SignalsP = new signal_queue_entry { Signals = { new siginfo_entry { Siginfo = ByteString.CopyFrom(Siginfo(12)) } } },
                Creds = CredsEntry(), SeccompMode = seccomp_mode.Filter, SeccompFilter = 1, Comm = "sleepy",
                RseqEntry = new rseq_entry { RseqAbiPointer = 0x7f3b1ca6b0e0, RseqAbiSize = 32, Signature = 0x53053053, RseqCsPointer = 0 },
            },
        };
    }

    public static Sample Rseq() => new(ImageFile.Core(Pid + 1), [new core_entry
    {
        Mtype = core_entry.Types.march.X8664,
        ThreadCore = new thread_core_entry
        {
            FutexRla = 0, FutexRlaLen = 24, RseqEntry = new rseq_entry { RseqAbiPointer = 0x7f3b1ca6c0e0, RseqAbiSize = 32, Signature = 0x53053053 },
        },
    }]);

    public static Sample Mm() => new(ImageFile.Mm(Pid),
    [
        new mm_entry
        {
            MmStartCode = 0x400000, MmEndCode = 0x401000, MmStartData = 0x403000, MmEndData = 0x404000,
            MmStartStack = 0x7ffd5a1c3000, MmStartBrk = 0x1c5e000, MmBrk = 0x1c7f000, MmArgStart = 0x7ffd5a1c3f10,
            MmArgEnd = 0x7ffd5a1c3f20, MmEnvStart = 0x7ffd5a1c3f20, MmEnvEnd = 0x7ffd5a1c3fe8, ExeFileId = 7,
            MmSavedAuxv = { 33, 0x7ffd5a1f6000, 16, 0x178bfbff, 6, 4096, 0, 0 }, Dumpable = 1, ThpDisabled = false,
            Vmas =
            {
                new vma_entry { Start = 0x400000, End = 0x401000, Pgoff = 0, Shmid = 7, Prot = 5, Flags = 2, Status = 0x41, Fd = -1 },
                new vma_entry { Start = 0x1c5e000, End = 0x1c7f000, Pgoff = 0, Shmid = 0, Prot = 3, Flags = 0x22, Status = 0x221, Fd = -1 },
                new vma_entry { Start = 0x7ffd5a1a4000, End = 0x7ffd5a1c5000, Pgoff = 0, Shmid = 0, Prot = 3, Flags = 0x122, Status = 0x203, Fd = -1, Madv = 0x10000 },
                new vma_entry { Start = 0x7ffd5a1f6000, End = 0x7ffd5a1f8000, Pgoff = 0, Shmid = 0, Prot = 5, Flags = 0x22, Status = 0x209, Fd = -1, Fdflags = 0x8002 },
            },
        },
    ]);

    public static Sample Fs() => new(ImageFile.Fs(Pid), [new fs_entry { CwdId = 9, RootId = 10, Umask = 0x12 }]);

    public static Sample Fdinfo() => new(ImageFile.Fdinfo(2),
    [
        new fdinfo_entry { Id = 11, Flags = 0, Type = fd_types.Tty, Fd = 0 },
        new fdinfo_entry { Id = 12, Flags = 1, Type = fd_types.Pipe, Fd = 3 },
        new fdinfo_entry { Id = 13, Flags = 1, Type = fd_types.Reg, Fd = 4 },
    ]);

    public static fown_entry Fown() => new() { Uid = 0, Euid = 0, Signum = 0, PidType = 0, Pid = 0 };

    private static reg_file_entry Reg() => new()
    {
        Id = 13, Flags = 0x88401, Pos = 4096, Fown = Fown(), Name = "/tmp/data file.log", MntId = 27, Size = 8192, Mode = 0x81a4,
    };

    public static Sample Files() => new(ImageFile.Files,
    [
        new file_entry { Type = fd_types.Reg, Id = 13, Reg = Reg() },
        new file_entry { Type = fd_types.Pipe, Id = 12, Pipe = new pipe_entry { Id = 12, PipeId = 123456, Flags = 0x801, Fown = Fown() } },
    ]);

    public static Sample RegFiles() => new(ImageFile.RegFiles, [Reg(), new reg_file_entry { Id = 7, Flags = 0x8000, Pos = 0, Fown = Fown(), Name = "/usr/bin/sleep" }]);

    public static Sample Pipes() => new(ImageFile.Pipes,
    [
        new pipe_entry { Id = 12, PipeId = 123456, Flags = 0x801, Fown = Fown() },
        new pipe_entry { Id = 14, PipeId = 123456, Flags = 0, Fown = Fown() },
    ]);

    public static Sample PipesData()
    {
        byte[] small = "hello through a pipe\n"u8.ToArray();
        byte[] big = Enumerable.Range(0, 300).Select(i => (byte)i).ToArray();
        return new(ImageFile.PipesData,
        [
            new pipe_data_entry { PipeId = 123456, Bytes = (uint)small.Length, Size = 65536 },
            new pipe_data_entry { PipeId = 123457, Bytes = (uint)big.Length },
        ], [small, big]);
    }

    public static Sample Sigacts()
    {
        var entries = new List<IMessage>();
        for (int sig = 1; sig <= 4; sig++)
            entries.Add(new sa_entry
            {
                Sigaction = sig == 2 ? 0x401136UL : 0, Flags = sig == 2 ? 0x4000000UL : 0, Restorer = sig == 2 ? 0x7f3b1c842520UL : 0,
                Mask = sig == 2 ? 0x2UL : 0, CompatSigaction = false, MaskExtended = 0,
            });
        return new(ImageFile.Sigacts(Pid), entries);
    }

    public static byte[] Bpf(params (ushort Code, byte Jt, byte Jf, uint K)[] prog)
    {
        var b = new byte[prog.Length * 8];
        for (int i = 0; i < prog.Length; i++)
        {
            BitConverter.TryWriteBytes(b.AsSpan(i * 8), prog[i].Code);
            b[i * 8 + 2] = prog[i].Jt;
            b[i * 8 + 3] = prog[i].Jf;
            BitConverter.TryWriteBytes(b.AsSpan(i * 8 + 4), prog[i].K);
        }
        return b;
    }

    public static Sample Seccomp() => new(ImageFile.Seccomp,
    [
        new seccomp_entry
        {
            SeccompFilters =
            {
                new seccomp_filter { Filter = ByteString.CopyFrom(Bpf((0x20, 0, 0, 4), (0x15, 1, 0, 0xc000003e), (0x06, 0, 0, 0), (0x06, 0, 0, 0x7fff0000))) },
                new seccomp_filter
                {
                    Filter = ByteString.CopyFrom(Bpf((0x20, 0, 0, 0), (0x15, 0, 1, 62), (0x06, 0, 0, 0x50001), (0x15, 0, 1, 200),
                        (0x06, 0, 0, 0x50001), (0x06, 0, 0, 0x7fff0000), (0x06, 0, 0, 0x7fff0000), (0x06, 0, 0, 0x7fff0000))),
                    Prev = 1, Flags = 1,
                },
            },
        },
    ]);

    public static Sample Itimers() => new(ImageFile.Itimers(Pid), [new itimer_entry { Isec = 0, Iusec = 0, Vsec = 2, Vusec = 500 }]);

    public static Sample PosixTimers() => new(ImageFile.PosixTimers(Pid),
    [
        new posix_timer_entry
        {
            ItId = 0, ClockId = 1, SiSigno = 14, ItSigevNotify = 0, SivalPtr = 0x7ffd5a1c2d00, Overrun = 0,
            Isec = 1, Insec = 0, Vsec = 0, Vnsec = 999999000, NotifyThreadId = Pid,
        },
    ]);

    public static Sample Tty() => new(ImageFile.TtyFiles, [new tty_file_entry { Id = 11, TtyInfoId = 1, Flags = 0x8002, Fown = Fown() }]);

    public static Sample TtyInfo()
    {
        var termios = new termios_entry { CIflag = 0x500, COflag = 5, CCflag = 0xbf, CLflag = 0x8a3b, CLine = 0, CIspeed = 15, COspeed = 15 };
        foreach (byte c in new byte[] { 3, 28, 127, 21, 4, 0, 1, 0, 17, 19, 26, 0, 18, 15, 23, 22, 0, 0, 0 })
            termios.CCc.Add(c);
        return new(ImageFile.TtyInfo,
        [
            new tty_info_entry
            {
                Id = 1, Type = TtyType.Pty, Locked = false, Exclusive = false, PacketMode = false, Sid = 1000, Pgrp = Pid,
                Rdev = (136u << 20) | 3, Termios = termios, TermiosLocked = termios.Clone(),
                Winsize = new winsize_entry { WsRow = 50, WsCol = 200, WsXpixel = 0, WsYpixel = 0 }, Pty = new tty_pty_entry { Index = 3 },
                Dev = 0x18, Uid = 1000, Gid = 5,
            },
        ]);
    }

    public static Sample TtyData() => new(ImageFile.TtyData, [new tty_data_entry { TtyId = 1, Data = ByteString.CopyFromUtf8("typed ahead\n") }]);

    public static Sample Rlimit() => new(ImageFile.Rlimit(Pid), [new rlimit_entry { Cur = 8388608, Max = ulong.MaxValue }, new rlimit_entry { Cur = 1024, Max = 524288 }]);
}
