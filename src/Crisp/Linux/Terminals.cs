namespace Crisp.Linux;

/// <summary>The kernel's struct termios2 (TCGETS2): flags, line discipline, the 19 control characters
/// and both speeds (which plain TCGETS leaves out).</summary>
public sealed record Termios(uint Iflag, uint Oflag, uint Cflag, uint Lflag, byte Line, byte[] Cc, uint Ispeed, uint Ospeed)
{
    public const int Nccs = 19;
    public const int Size = 44;
}

/// <summary>struct winsize (TIOCGWINSZ).</summary>
public readonly record struct WinSize(ushort Rows, ushort Cols, ushort XPixel, ushort YPixel);

/// <summary>Terminal ioctls on crisp's own fds (a pidfd_getfd copy at dump, the new ptys at restore).</summary>
public static unsafe class Terminals
{
    public const long TCGETS = 0x5401, TCSETS = 0x5402, TIOCEXCL = 0x540C, TIOCNXCL = 0x540D, TIOCSCTTY = 0x540E,
        TIOCGPGRP = 0x540F, TIOCSPGRP = 0x5410, TIOCGWINSZ = 0x5413, TIOCSWINSZ = 0x5414, TIOCPKT = 0x5420,
        TIOCGSID = 0x5429, TCGETS2 = 0x802C542A, TCSETS2 = 0x402C542B, TIOCGPTN = 0x80045430,
        TIOCSPTLCK = 0x40045431, TIOCGPKT = 0x80045438, TIOCGPTLCK = 0x80045439, TIOCGEXCL = 0x80045440,
        TIOCGPTPEER = 0x5441, TIOCGLCKTRMIOS = 0x5456, TIOCSLCKTRMIOS = 0x5457;

    /// <summary>The pty master of every devpts instance (/dev/ptmx, /dev/pts/ptmx): char 5:2.</summary>
    public const uint PtmxMajor = 5, PtmxMinor = 2;
    /// <summary>Unix98 pty slaves: majors 136–143, index = (major - 136) * 256 + minor.</summary>
    public const uint PtsFirstMajor = 136, PtsLastMajor = 143;

    public static Termios GetTermios(int fd, bool locked = false)
    {
        byte* t = stackalloc byte[64];
        new Span<byte>(t, 64).Clear();
        // Locked termios only exist as struct termios (no speeds); TCGETS2 for the rest.
        RawSyscall.Call(locked ? "ioctl(TIOCGLCKTRMIOS)" : "ioctl(TCGETS2)", Sysno.ioctl, fd, locked ? TIOCGLCKTRMIOS : TCGETS2, (long)t);
        uint* u = (uint*)t;
        return new Termios(u[0], u[1], u[2], u[3], t[16], new Span<byte>(t + 17, Termios.Nccs).ToArray(),
            locked ? 0 : *(uint*)(t + 36), locked ? 0 : *(uint*)(t + 40));
    }

    public static void SetTermios(int fd, Termios termios, bool locked = false)
    {
        byte* t = stackalloc byte[64];
        new Span<byte>(t, 64).Clear();
        uint* u = (uint*)t;
        u[0] = termios.Iflag; u[1] = termios.Oflag; u[2] = termios.Cflag; u[3] = termios.Lflag;
        t[16] = termios.Line;
        termios.Cc.AsSpan(0, Math.Min(termios.Cc.Length, Termios.Nccs)).CopyTo(new Span<byte>(t + 17, Termios.Nccs));
        if (locked)
        {
            RawSyscall.Call("ioctl(TIOCSLCKTRMIOS)", Sysno.ioctl, fd, TIOCSLCKTRMIOS, (long)t);
            return;
        }
        *(uint*)(t + 36) = termios.Ispeed;
        *(uint*)(t + 40) = termios.Ospeed;
        RawSyscall.Call("ioctl(TCSETS2)", Sysno.ioctl, fd, TCSETS2, (long)t);
    }

    public static WinSize GetWinSize(int fd)
    {
        ushort* w = stackalloc ushort[4];
        RawSyscall.Call("ioctl(TIOCGWINSZ)", Sysno.ioctl, fd, TIOCGWINSZ, (long)w);
        return new WinSize(w[0], w[1], w[2], w[3]);
    }

    public static void SetWinSize(int fd, WinSize ws)
    {
        ushort* w = stackalloc ushort[4];
        w[0] = ws.Rows; w[1] = ws.Cols; w[2] = ws.XPixel; w[3] = ws.YPixel;
        RawSyscall.Call("ioctl(TIOCSWINSZ)", Sysno.ioctl, fd, TIOCSWINSZ, (long)w);
    }

    /// <summary>An int-returning ioctl (TIOCGPTN, TIOCGPKT, TIOCGPTLCK, TIOCGEXCL, TIOCGSID, TIOCGPGRP).</summary>
    public static int GetInt(int fd, long request)
    {
        int v = 0;
        RawSyscall.Call($"ioctl({request:x})", Sysno.ioctl, fd, request, (long)&v);
        return v;
    }

    /// <summary>Like <see cref="GetInt"/>, or null when the kernel says ENOTTY (no session, not our terminal).</summary>
    public static int? TryGetInt(int fd, long request)
    {
        int v = 0;
        long r = RawSyscall.TryCall(Sysno.ioctl, fd, request, (long)&v);
        if (r < 0)
        {
            const int ENOTTY = 25;
            if (r == -ENOTTY || r == -Errnos.EIO)
                return null;
            throw new SyscallException($"ioctl({request:x})", (int)-r);
        }
        return v;
    }

    /// <summary>An ioctl taking an int by pointer (TIOCSPTLCK, TIOCPKT, TIOCSPGRP).</summary>
    public static void SetInt(int fd, long request, int value) =>
        RawSyscall.Call($"ioctl({request:x})", Sysno.ioctl, fd, request, (long)&value);

    public static void Ioctl(int fd, long request, long arg = 0) =>
        RawSyscall.Call($"ioctl({request:x})", Sysno.ioctl, fd, request, arg);

    public static bool IsPtmx(uint major, uint minor) => major == PtmxMajor && minor == PtmxMinor;
    /// <summary>/dev/tty (5:0): whatever the opener's controlling terminal is.</summary>
    public static bool IsControllingTty(uint major, uint minor) => major == 5 && minor == 0;
    public static bool IsPtySlave(uint major) => major >= PtsFirstMajor && major <= PtsLastMajor;
    public static int SlaveIndex(uint major, uint minor) => (int)((major - PtsFirstMajor) * 256 + minor);

    /// <summary>Major/minor of a dev_t as fstat gives it.</summary>
    public static (uint Major, uint Minor) Split(ulong dev) =>
        ((uint)(((dev >> 8) & 0xfff) | ((dev >> 32) & ~0xfffUL)), (uint)((dev & 0xff) | ((dev >> 12) & ~0xffUL)));

    /// <summary>/proc/PID/stat's tty_nr of a device (the kernel's new_encode_dev).</summary>
    public static int TtyNr(ulong dev)
    {
        var (major, minor) = Split(dev);
        return (int)((minor & 0xff) | (major << 8) | ((minor & ~0xffu) << 12));
    }

    /// <summary>Blocks SIGTTOU on the calling thread around <paramref name="action"/>: a terminal's job control
    /// lets a blocked-SIGTTOU caller change it even from a background group (tty_check_change).</summary>
    public static void WithoutSigttou(Action action)
    {
        const int SIG_BLOCK = 0, SIG_SETMASK = 2;
        ulong set = 1UL << (Signals.SIGTTOU - 1), old = 0;
        RawSyscall.Call("rt_sigprocmask", Sysno.rt_sigprocmask, SIG_BLOCK, (long)&set, (long)&old, 8);
        try { action(); }
        finally { RawSyscall.TryCall(Sysno.rt_sigprocmask, SIG_SETMASK, (long)&old, 0, 8); }
    }
}
