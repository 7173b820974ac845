namespace Crisp.Linux;

/// <summary>The few x86-64 instruction sequences crisp writes into other processes as data: the vdso
/// trampoline remote syscalls run on in a dumped task, and the whole program of a restore puppet. Kept here
/// so that everything that knows the instruction set is in the architecture folder.</summary>
public static class MachineCode
{
    /// <summary>ELF e_machine of this architecture (EM_X86_64).</summary>
    public const ushort ElfMachine = 0x3E;

    /// <summary>Remote-call trampoline: syscall (0f 05); mov eax, 15 (b8 0f 00 00 00); syscall (0f 05) — the
    /// second syscall is rt_sigreturn, where a thread waits between calls.</summary>
    public static ReadOnlySpan<byte> Trampoline => [0x0f, 0x05, 0xb8, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05];

    /// <summary>Offset of the trampoline's rt_sigreturn part.</summary>
    public const int TrampolineSigreturnOffset = 2;

    /// <summary>A puppet's program: nanosleep(&amp;ts, NULL); exit_group(1); then the <c>syscall; int3</c>
    /// gadget (at <see cref="PuppetGadgetOffset"/>) and ts = { seconds, 0 }, addressed rip-relative.</summary>
    public static byte[] PuppetProgram(int seconds) =>
    [
        0xB8, 0x23, 0x00, 0x00, 0x00,               // mov eax, 35 (nanosleep)
        0x48, 0x8D, 0x3D, 0x14, 0x00, 0x00, 0x00,   // lea rdi, [rip + 20] (ts)
        0x31, 0xF6,                                 // xor esi, esi
        0x0F, 0x05,                                 // syscall
        0xBF, 0x01, 0x00, 0x00, 0x00,               // mov edi, 1
        0xB8, 0xE7, 0x00, 0x00, 0x00,               // mov eax, 231 (exit_group)
        0x0F, 0x05,                                 // syscall
        0x0F, 0x05, 0xCC,                           // gadget: syscall; int3
        0x00,                                       // pad: ts 8-aligned
        .. BitConverter.GetBytes((long)seconds), .. BitConverter.GetBytes(0L),
        .. SyscallBatch,
    ];

    /// <summary>Where the <c>syscall; int3</c> gadget sits in <see cref="PuppetProgram"/>.</summary>
    public const int PuppetGadgetOffset = 28;

    /// <summary>Where <see cref="SyscallBatch"/> sits in <see cref="PuppetProgram"/> (after the timespec).</summary>
    public const int PuppetBatchOffset = 48;

    /// <summary>Runs r12 (at least 1) syscalls from a table at rbx, then traps: each entry is 8 words — nr, six
    /// arguments, and the raw result written back. One ptrace stop for many calls (a task's 64 sigactions).</summary>
    public static ReadOnlySpan<byte> SyscallBatch => s_syscallBatch;

    private static readonly byte[] s_syscallBatch = [.. BatchLoop, 0xCC];   // int3

    /// <summary>The table loop both batches share.</summary>
    private static ReadOnlySpan<byte> BatchLoop =>
    [
        0x48, 0x8B, 0x03,                   // loop: mov rax, [rbx]
        0x48, 0x8B, 0x7B, 0x08,             // mov rdi, [rbx+8]
        0x48, 0x8B, 0x73, 0x10,             // mov rsi, [rbx+16]
        0x48, 0x8B, 0x53, 0x18,             // mov rdx, [rbx+24]
        0x4C, 0x8B, 0x53, 0x20,             // mov r10, [rbx+32]
        0x4C, 0x8B, 0x43, 0x28,             // mov r8, [rbx+40]
        0x4C, 0x8B, 0x4B, 0x30,             // mov r9, [rbx+48]
        0x0F, 0x05,                         // syscall
        0x48, 0x89, 0x43, 0x38,             // mov [rbx+56], rax
        0x48, 0x83, 0xC3, 0x40,             // add rbx, 64
        0x49, 0xFF, 0xCC,                   // dec r12
        0x75, 0xD6,                         // jnz loop
    ];

    /// <summary><see cref="SyscallBatch"/> for a dumped task's crash-safe thread: the same loop, then rt_sigreturn
    /// (mov eax, 15; syscall) from the sigreturn frame rsp points at, instead of int3. The table's last calls unblock
    /// and raise an ignored signal: crisp stops the thread at its delivery; a crisp that died meanwhile leaves a thread
    /// whose signal is dropped and which puts its own state back (RemoteTask).</summary>
    public static ReadOnlySpan<byte> CrashSafeSyscallBatch => s_crashSafeSyscallBatch;

    private static readonly byte[] s_crashSafeSyscallBatch = [.. BatchLoop, 0xB8, 0x0F, 0x00, 0x00, 0x00, 0x0F, 0x05];

    /// <summary>Offset of the instruction after <see cref="CrashSafeSyscallBatch"/>'s syscall: where a thread stops
    /// when a signal is delivered on that syscall's return.</summary>
    public const int CrashSafeBatchAfterSyscall = 29;

    /// <summary>Bytes of one <see cref="SyscallBatch"/> table entry.</summary>
    public const int SyscallBatchEntry = 64;

    /// <summary><see cref="SiblingSpawn"/>'s clone3(CLONE_PARENT|CLONE_VFORK) + execve, called as a C function.</summary>
    // x86-64, SysV call: rdi = clone_args*, rsi = size, rdx = path, rcx = argv, r8 = envp.
    // The kernel preserves every register but rax, rcx and r11 across syscall, and the child starts
    // with the parent's registers (rax = 0) on the parent's stack, which it never returns on.
    public static ReadOnlySpan<byte> SiblingSpawner =>
    [
        0x49, 0x89, 0xCA,                   // mov r10, rcx          (argv; rcx is clobbered)
        0xB8, 0xB3, 0x01, 0x00, 0x00,       // mov eax, 435          (clone3)
        0x0F, 0x05,                         // syscall
        0x48, 0x85, 0xC0,                   // test rax, rax
        0x75, 0x1C,                         // jnz parent
        0x48, 0x89, 0xD7,                   // mov rdi, rdx          (path)
        0x4C, 0x89, 0xD6,                   // mov rsi, r10          (argv)
        0x4C, 0x89, 0xC2,                   // mov rdx, r8           (envp)
        0xB8, 0x3B, 0x00, 0x00, 0x00,       // mov eax, 59           (execve)
        0x0F, 0x05,                         // syscall
        0xBF, 0x7F, 0x00, 0x00, 0x00,       // mov edi, 127
        0xB8, 0xE7, 0x00, 0x00, 0x00,       // mov eax, 231          (exit_group)
        0x0F, 0x05,                         // syscall
        0xC3,                               // parent: ret           (rax = pid or -errno)
    ];
}
