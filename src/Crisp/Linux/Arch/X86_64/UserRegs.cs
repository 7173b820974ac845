using System.Runtime.InteropServices;

namespace Crisp.Linux;

/// <summary>x86-64 struct user_regs_struct (27 × u64), as PTRACE_GETREGS and NT_PRSTATUS return it.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct UserRegs
{
    public ulong R15, R14, R13, R12, Rbp, Rbx, R11, R10, R9, R8, Rax, Rcx, Rdx, Rsi, Rdi,
        OrigRax, Rip, Cs, Eflags, Rsp, Ss, FsBase, GsBase, Ds, Es, Fs, Gs;

    public const int Size = 27 * 8;

    /// <summary>Syscall-restart codes the kernel leaves in rax of a task stopped inside a syscall.</summary>
    public const long ERESTARTSYS = -512, ERESTARTNOINTR = -513, ERESTARTNOHAND = -514,
        ERESTART_RESTARTBLOCK = -516;

    /// <summary>True when the task stopped on its way out of a syscall that the kernel will restart
    /// (or turn into EINTR) when it resumes.</summary>
    public readonly bool InRestartableSyscall =>
        (long)OrigRax >= 0 && (long)Rax is ERESTARTSYS or ERESTARTNOINTR or ERESTARTNOHAND or ERESTART_RESTARTBLOCK;

    /// <summary>These registers loaded for syscall <paramref name="nr"/>: the number in rax, the arguments in
    /// rdi, rsi, rdx, r10, r8, r9 (the kernel's convention: r10, not the C ABI's rcx), rip at a syscall
    /// instruction; orig_rax -1 so that resuming applies no syscall-restart fix-up.</summary>
    public readonly UserRegs WithSyscall(ulong rip, long nr, long a1 = 0, long a2 = 0, long a3 = 0, long a4 = 0, long a5 = 0, long a6 = 0)
    {
        var regs = this;
        regs.Rax = (ulong)nr;
        regs.OrigRax = ulong.MaxValue;
        regs.Rdi = (ulong)a1;
        regs.Rsi = (ulong)a2;
        regs.Rdx = (ulong)a3;
        regs.R10 = (ulong)a4;
        regs.R8 = (ulong)a5;
        regs.R9 = (ulong)a6;
        regs.Rip = rip;
        return regs;
    }

    /// <summary>A syscall's raw result (-errno on failure), read at its exit.</summary>
    public readonly long SyscallResult => (long)Rax;

    public override readonly string ToString() =>
        $"rip={Rip:x} rsp={Rsp:x} rax={(long)Rax} orig_rax={(long)OrigRax} rdi={Rdi:x} rsi={Rsi:x} rdx={Rdx:x}";
}
