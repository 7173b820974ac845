using Crisp.Images.Proto;
using Crisp.Linux;
using Crisp.Resources.Files.Tty;

namespace Crisp.Tests.Resources.Files.Tty;

/// <summary>termios_entry.c_cc in CRIU's layout: the control characters memcpy'd into uint32 words.</summary>
public class TermiosEntriesTests
{
    // /dev/console's c_cc as upstream CRIU 4.2 wrote it (crit show tty-info.img), VEOL2 set to 0x1d.
    private static readonly uint[] CriuWords = [360651779, 65540, 1708817, 370609938, 29, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    private static readonly byte[] Chars = [0x03, 0x1c, 0x7f, 0x15, 0x04, 0x00, 0x01, 0x00, 0x11, 0x13, 0x1a, 0x00, 0x12, 0x0f, 0x17, 0x16, 0x1d, 0x00, 0x00];

    [Fact]
    public void ControlCharactersArePackedAsCriuPacksThem()
    {
        var e = TermiosEntries.ToEntry(new Termios(1, 2, 3, 4, 0, Chars, 9600, 9600));
        Assert.Equal(CriuWords, e.CCc);
    }

    [Fact]
    public void CriusEntryGivesTheControlCharactersBack()
    {
        var e = new termios_entry { CIflag = 1, COflag = 2, CCflag = 3, CLflag = 4, CLine = 0, CIspeed = 0, COspeed = 0 };
        e.CCc.Add(CriuWords);
        Assert.Equal(Chars, TermiosEntries.FromEntry(e, withSpeeds: true).Cc);
    }

    /// <summary>CRIU leaves words 8-18 uninitialised (it memcpy's only glibc's 32-byte c_cc into them).</summary>
    [Fact]
    public void CriusUninitialisedWordsAreIgnored()
    {
        var e = new termios_entry { CIflag = 1, COflag = 2, CCflag = 3, CLflag = 4, CLine = 0, CIspeed = 0, COspeed = 0 };
        e.CCc.Add(CriuWords.Take(8));
        e.CCc.Add(Enumerable.Repeat(0xdeadbeefu, 11));
        Assert.Equal(Chars, TermiosEntries.FromEntry(e, withSpeeds: true).Cc);
    }

    [Fact]
    public void OneCharacterAWordIsStillRead()
    {
        var e = new termios_entry { CIflag = 1, COflag = 2, CCflag = 3, CLflag = 4, CLine = 0, CIspeed = 0, COspeed = 0 };
        e.CCc.Add(Chars.Select(c => (uint)c));
        Assert.Equal(Chars, TermiosEntries.FromEntry(e, withSpeeds: true).Cc);
    }
}
