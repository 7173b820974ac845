namespace Crisp.Linux;

/// <summary>Offsets into x86-64's struct user, the area PTRACE_PEEKUSER / POKEUSER address.</summary>
public static class UserArea
{
    private const int DebugRegs = 848;   // offsetof(struct user, u_debugreg)

    /// <summary>Offset of debug register DR<paramref name="n"/> (0-7).</summary>
    public static int DebugReg(int n) => DebugRegs + n * 8;
}
