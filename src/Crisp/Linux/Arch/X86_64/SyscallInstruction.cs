namespace Crisp.Linux;

/// <summary>x86-64's syscall instruction (0f 05) and the <c>syscall; int3</c> gadget remote calls run on
/// (the int3 stops the task with SIGTRAP right after the call).</summary>
public static class SyscallInstruction
{
    /// <summary>Bytes of the instruction; rip after it is the address plus this.</summary>
    public const int Length = 2;

    /// <summary>The gadget as it sits in memory: syscall (0f 05); int3 (cc).</summary>
    public static ReadOnlySpan<byte> Gadget => [0x0f, 0x05, 0xcc];

    /// <summary>The gadget as the low three bytes of a little-endian word (PTRACE_POKEDATA).</summary>
    public const ulong GadgetWord = 0xcc050f, GadgetMask = 0xffffff;

    /// <summary>The word read at some address starts with a syscall instruction.</summary>
    public static bool StartsWord(ulong word) => (word & 0xffff) == 0x050f;
}
