using Crisp.Images.Proto;
using Crisp.Linux;

namespace Crisp.Resources.Registers;

/// <summary>user_regs_struct ↔ CRIU's user_x86_regs_entry (same fields, CRIU's names).</summary>
public static class GpregsCodec
{
    public static user_x86_regs_entry Encode(in UserRegs r) => new()
    {
        R15 = r.R15, R14 = r.R14, R13 = r.R13, R12 = r.R12, Bp = r.Rbp, Bx = r.Rbx, R11 = r.R11, R10 = r.R10,
        R9 = r.R9, R8 = r.R8, Ax = r.Rax, Cx = r.Rcx, Dx = r.Rdx, Si = r.Rsi, Di = r.Rdi, OrigAx = r.OrigRax,
        Ip = r.Rip, Cs = r.Cs, Flags = r.Eflags, Sp = r.Rsp, Ss = r.Ss, FsBase = r.FsBase, GsBase = r.GsBase,
        Ds = r.Ds, Es = r.Es, Fs = r.Fs, Gs = r.Gs, Mode = user_x86_regs_mode.Native,
    };

    public static UserRegs Decode(user_x86_regs_entry e)
    {
        if (e.HasMode && e.Mode != user_x86_regs_mode.Native)
            throw new CrispException("32-bit (compat) tasks are not supported");
        return new UserRegs
        {
            R15 = e.R15, R14 = e.R14, R13 = e.R13, R12 = e.R12, Rbp = e.Bp, Rbx = e.Bx, R11 = e.R11, R10 = e.R10,
            R9 = e.R9, R8 = e.R8, Rax = e.Ax, Rcx = e.Cx, Rdx = e.Dx, Rsi = e.Si, Rdi = e.Di, OrigRax = e.OrigAx,
            Rip = e.Ip, Cs = e.Cs, Eflags = e.Flags, Rsp = e.Sp, Ss = e.Ss, FsBase = e.FsBase, GsBase = e.GsBase,
            Ds = e.Ds, Es = e.Es, Fs = e.Fs, Gs = e.Gs,
        };
    }
}
