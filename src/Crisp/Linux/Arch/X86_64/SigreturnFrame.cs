using System.Buffers.Binary;
using System.Runtime.Intrinsics.X86;

namespace Crisp.Linux;

/// <summary>An x86-64 rt_sigreturn frame (struct ucontext + XSAVE area) holding a thread's own registers,
/// signal mask and FPU/SSE/AVX state, placed below the thread's red zone the way the kernel places a
/// signal frame (memory the ABI leaves free for exactly that). A thread whose rsp points at the
/// ucontext and that runs rt_sigreturn gets all of it back by itself: crisp's way out if it dies while
/// the thread holds injected registers.</summary>
public sealed class SigreturnFrame
{
    // struct ucontext: uc_flags 0, uc_link 8, uc_stack 16 (ss_sp 16, ss_flags 24, ss_size 32),
    // uc_mcontext 40 (struct sigcontext, 256 bytes), uc_sigmask 296.
    private const int UcSize = 304, McOffset = 40;
    public const int SigmaskOffset = 296;
    // struct rt_sigframe is pretcode + ucontext + siginfo: rt_sigreturn access_ok()s all of it.
    private const int FrameBelowUc = 8, SiginfoSize = 128;
    private const ulong UC_FP_XSTATE = 1, UC_SIGCONTEXT_SS = 2, UC_STRICT_RESTORE_SS = 4;
    // An invalid mode: restore_altstack() ignores do_sigaltstack()'s EINVAL ("squash all but EFAULT"),
    // so the thread's alternate signal stack is never changed by our sigreturn.
    private const int SsFlagsInvalid = 3;
    private const uint FP_XSTATE_MAGIC1 = 0x46505853, FP_XSTATE_MAGIC2 = 0x46505845;
    private const int SwBytesOffset = 464, XstateBvOffset = 512, LegacyAndHeader = 576;
    private const int RedZone = 128;

    /// <summary>Address of the ucontext: rsp at rt_sigreturn.</summary>
    public ulong Ucontext { get; }

    /// <summary>Lowest byte the frame covers.</summary>
    public ulong Start { get; }

    /// <summary>The frame's bytes, to be written at <see cref="Start"/>.</summary>
    public byte[] Bytes { get; }

    /// <summary>Builds the frame for a thread stopped with <paramref name="regs"/>, signal mask
    /// <paramref name="mask"/> and XSAVE area <paramref name="xstate"/> (PTRACE_GETREGSET NT_X86_XSTATE).</summary>
    public SigreturnFrame(UserRegs regs, ulong mask, ReadOnlySpan<byte> xstate)
    {
        int fpSize = xstate.Length + sizeof(uint);
        ulong top = regs.Rsp - RedZone;
        ulong fp = (top - (ulong)fpSize) & ~63UL;               // XRSTOR needs 64-byte alignment
        Ucontext = (fp - UcSize - SiginfoSize) & ~63UL;
        Start = Ucontext - FrameBelowUc;
        Bytes = new byte[fp + (ulong)fpSize - Start];
        var uc = Bytes.AsSpan(FrameBelowUc);
        WriteU64(uc, 0, UC_FP_XSTATE | UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS);
        BinaryPrimitives.WriteInt32LittleEndian(uc[24..], SsFlagsInvalid);
        WriteContext(uc[McOffset..], ResumeRegisters(regs), fp);
        WriteU64(uc, SigmaskOffset, mask);
        WriteXstate(Bytes.AsSpan((int)(fp - Start), fpSize), xstate);
    }

    /// <summary>What the kernel would do to <paramref name="regs"/> when the thread resumes without a signal:
    /// rt_sigreturn sets orig_ax = -1, so any restart is done here. -ERESTART_RESTARTBLOCK reruns the
    /// original syscall rather than restart_syscall(): rt_sigreturn resets the restart block to
    /// "return -EINTR", and a sleep or wait that starts over only lasts longer than asked, as after
    /// any preemption, where an EINTR would be an error a program without signal handlers never sees.</summary>
    public static UserRegs ResumeRegisters(UserRegs regs)
    {
        if ((long)regs.OrigRax >= 0 && regs.InRestartableSyscall)
        {
            regs.Rax = regs.OrigRax;
            regs.Rip -= 2;
        }
        return regs;
    }

    private static void WriteContext(Span<byte> sc, UserRegs r, ulong fp)
    {
        ulong[] gp = [r.R8, r.R9, r.R10, r.R11, r.R12, r.R13, r.R14, r.R15, r.Rdi, r.Rsi, r.Rbp, r.Rbx,
            r.Rdx, r.Rax, r.Rcx, r.Rsp, r.Rip, r.Eflags];
        for (int i = 0; i < gp.Length; i++)
            WriteU64(sc, i * 8, gp[i]);
        BinaryPrimitives.WriteUInt16LittleEndian(sc[144..], (ushort)r.Cs);
        BinaryPrimitives.WriteUInt16LittleEndian(sc[146..], (ushort)r.Gs);
        BinaryPrimitives.WriteUInt16LittleEndian(sc[148..], (ushort)r.Fs);
        BinaryPrimitives.WriteUInt16LittleEndian(sc[150..], (ushort)r.Ss);
        WriteU64(sc, 184, fp);
    }

    /// <summary>The XSAVE area with the software-reserved bytes the kernel checks (fpu__restore_sig):
    /// magic1, the features present and a size no larger than the task's own signal-frame XSAVE size
    /// (ptrace reports the machine's largest, e.g. with AMX, which the kernel would refuse and then
    /// restore only x87/SSE), and magic2 right after that size. Without them the FPU state is lost.</summary>
    private static void WriteXstate(Span<byte> dest, ReadOnlySpan<byte> xstate)
    {
        xstate.CopyTo(dest);
        ulong features = BinaryPrimitives.ReadUInt64LittleEndian(xstate[XstateBvOffset..]) | 3;   // x87, SSE
        int size = LegacyAndHeader;
        for (int i = 2; i < 64; i++)
            if ((features & (1UL << i)) != 0)
                size = Math.Max(size, ComponentEnd(i));
        if (size > xstate.Length)
            throw new InvalidOperationException($"XSAVE component end {size} beyond the {xstate.Length}-byte area");
        var sw = dest[SwBytesOffset..];
        sw[..48].Clear();
        BinaryPrimitives.WriteUInt32LittleEndian(sw, FP_XSTATE_MAGIC1);
        BinaryPrimitives.WriteUInt32LittleEndian(sw[4..], (uint)(size + sizeof(uint)));   // extended_size
        BinaryPrimitives.WriteUInt64LittleEndian(sw[8..], features);
        BinaryPrimitives.WriteUInt32LittleEndian(sw[16..], (uint)size);                  // xstate_size
        BinaryPrimitives.WriteUInt32LittleEndian(dest[size..], FP_XSTATE_MAGIC2);
    }

    /// <summary>End of XSAVE component <paramref name="i"/> in the standard layout (CPUID leaf 0xD).</summary>
    private static int ComponentEnd(int i)
    {
        var (size, offset, _, _) = X86Base.CpuId(0xD, i);
        return offset + size;
    }

    private static void WriteU64(Span<byte> b, int at, ulong v) => BinaryPrimitives.WriteUInt64LittleEndian(b[at..], v);
}
