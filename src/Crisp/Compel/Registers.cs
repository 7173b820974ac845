using Crisp.Linux;

namespace Crisp.Compel;

/// <summary>Register sets of a seized, stopped thread, read and written on the tracer thread.</summary>
public static class Registers
{
    public static UserRegs Get(Tracer tracer, SeizedThread thread) => tracer.Run(() => Ptrace.GetRegs(thread.Tid));

    public static void Set(Tracer tracer, SeizedThread thread, UserRegs regs) => tracer.Run(() => Ptrace.SetRegs(thread.Tid, regs));

    /// <summary>The XSAVE area (standard layout, length as the kernel reports it).</summary>
    public static byte[] GetXstate(Tracer tracer, SeizedThread thread) => tracer.Run(() => Xsave.GetXstate(thread.Tid));

    public static void SetXstate(Tracer tracer, SeizedThread thread, byte[] area) => tracer.Run(() => Xsave.SetXstate(thread.Tid, area));

    /// <summary>The 512-byte FXSAVE area (x87 + SSE).</summary>
    public static byte[] GetFpregs(Tracer tracer, SeizedThread thread) => tracer.Run(() => Xsave.GetFpregs(thread.Tid));

    public static void SetFpregs(Tracer tracer, SeizedThread thread, byte[] area) => tracer.Run(() => Xsave.SetFpregs(thread.Tid, area));
}
