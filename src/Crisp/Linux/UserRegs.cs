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

    public override readonly string ToString() =>
        $"rip={Rip:x} rsp={Rsp:x} rax={(long)Rax} orig_rax={(long)OrigRax} rdi={Rdi:x} rsi={Rsi:x} rdx={Rdx:x}";
}
