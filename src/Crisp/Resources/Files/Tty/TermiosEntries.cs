using Crisp.Images.Proto;
using Crisp.Linux;

namespace Crisp.Resources.Files.Tty;

/// <summary>termios_entry as CRIU writes it: its c_cc is 19 uint32 words into which CRIU memcpy's the control
/// characters (termios_copy), so the bytes are packed four to a word, little-endian; crisp writes the words past
/// them as zeros. The speeds (CRIU leaves them 0) are crisp's TCGETS2 ones; with CBAUD not BOTHER the kernel ignores them.</summary>
public static class TermiosEntries
{
    private const int Words = 19;

    public static termios_entry ToEntry(Termios t)
    {
        var e = new termios_entry
        {
            CIflag = t.Iflag, COflag = t.Oflag, CCflag = t.Cflag, CLflag = t.Lflag, CLine = t.Line,
            CIspeed = t.Ispeed, COspeed = t.Ospeed,
        };
        var packed = new byte[Words * 4];
        t.Cc.AsSpan(0, Math.Min(t.Cc.Length, Termios.Nccs)).CopyTo(packed);
        for (int i = 0; i < Words; i++)
            e.CCc.Add(BitConverter.ToUInt32(packed, i * 4));
        return e;
    }

    public static Termios FromEntry(termios_entry e, bool withSpeeds)
    {
        var cc = new byte[Termios.Nccs];
        // CRIU fills only the first 32 bytes (glibc's c_cc; bytes 19-31 zero) and leaves words 8-18 as the heap had
        // them, so only words 5-7 tell its layout from crisp's earlier one character a word (where VMIN is word 6).
        if (e.CCc.Skip(5).Take(3).Any(w => w != 0))
        {
            // One character a word: what crisp wrote before it packed them as CRIU does.
            for (int i = 0; i < Math.Min(cc.Length, e.CCc.Count); i++)
                cc[i] = (byte)e.CCc[i];
        }
        else
        {
            var packed = new byte[Math.Max(e.CCc.Count, 5) * 4];
            for (int i = 0; i < e.CCc.Count; i++)
                BitConverter.GetBytes(e.CCc[i]).CopyTo(packed, i * 4);
            packed.AsSpan(0, Termios.Nccs).CopyTo(cc);
        }
        return new Termios(e.CIflag, e.COflag, e.CCflag, e.CLflag, (byte)e.CLine, cc,
            withSpeeds ? e.CIspeed : 0, withSpeeds ? e.COspeed : 0);
    }
}
