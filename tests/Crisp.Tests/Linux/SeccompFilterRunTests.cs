using System.Buffers.Binary;
using Crisp.Linux;

namespace Crisp.Tests.Linux;

/// <summary>SeccompFilterRun follows a filter's program as the kernel runs it: loads of seccomp_data words, scratch
/// memory, arithmetic, conditional jumps, the most restrictive verdict of several filters, and "not allowed" for
/// anything it cannot run. (The filters of real workloads go through it in every dump of a seccomp task:
/// CrashSafeDumpTests, SeccompTests.)</summary>
public sealed class SeccompFilterRunTests
{
    private const uint Errno = 0x00050000;

    /// <summary>x86-64 only; tgkill refused; rt_sigprocmask with how == SIG_SETMASK (2) allowed at once; getppid refused
    /// through arithmetic (nr - 100 == 10); the rest allowed, a few of them through a scratch-memory round trip.</summary>
    private static byte[] Filter()
    {
        var p = new List<(ushort Code, byte Jt, byte Jf, uint K)>
        {
            (0x20, 0, 0, 4),                                  // ld arch
            (0x15, 1, 0, SeccompFilterRun.AuditArchX8664),    // jeq x86-64 ? +1 : +0
            (0x06, 0, 0, 0),                                  // ret kill
            (0x20, 0, 0, 0),                                  // ld nr
            (0x02, 0, 0, 3),                                  // st M[3]
            (0x15, 0, 1, (uint)Sysno.tgkill),                 // jeq tgkill
            (0x06, 0, 0, Errno | 1),                          // ret errno EPERM
            (0x15, 0, 3, (uint)Sysno.rt_sigprocmask),         // jeq rt_sigprocmask ? : skip 3
            (0x20, 0, 0, 16),                                 // ld args[0] (low word)
            (0x15, 0, 1, 2),                                  // jeq SIG_SETMASK
            (0x06, 0, 0, 0x7fff0000),                         // ret allow
            (0x60, 0, 0, 3),                                  // ld M[3]
            (0x14, 0, 0, 100),                                // sub #100
            (0x15, 0, 1, 10),                                 // jeq 10 (getppid = 110)
            (0x06, 0, 0, Errno | 13),                         // ret errno EACCES
            (0x06, 0, 0, 0x7fff0000),                         // ret allow
        };
        // rt_sigprocmask with another how falls through to "ld M[3]; sub 100" (14 - 100 != 10): allowed too.
        return Crisp.Tests.Images.SampleImages.Bpf([.. p]);
    }

    [Fact]
    public void VerdictsFollowTheProgram()
    {
        byte[][] filters = [Filter()];
        Assert.False(SeccompFilterRun.Allows(filters, (int)Sysno.tgkill, 0, 1, 1, 23));
        Assert.True(SeccompFilterRun.Allows(filters, (int)Sysno.rt_sigprocmask, 0, 2, 0x1000, 0, 8));
        Assert.True(SeccompFilterRun.Allows(filters, (int)Sysno.rt_sigaction, 0, 10, 0, 0x1000, 8));
        Assert.False(SeccompFilterRun.Allows(filters, 110, 0));   // getppid
        Assert.True(SeccompFilterRun.Allows(filters, (int)Sysno.getpid, 0));
        // A second filter that refuses everything wins over an allowing one.
        byte[] deny = new byte[8];
        BinaryPrimitives.WriteUInt16LittleEndian(deny, 0x06);
        BinaryPrimitives.WriteUInt32LittleEndian(deny.AsSpan(4), Errno | 1);
        Assert.False(SeccompFilterRun.Allows([Filter(), deny], (int)Sysno.getpid, 0));
    }

    [Fact]
    public void UnknownOrMalformedInstructionsAreNotAllowed()
    {
        byte[] bad = new byte[16];
        BinaryPrimitives.WriteUInt16LittleEndian(bad, 0x20);          // ld [62]: past seccomp_data
        BinaryPrimitives.WriteUInt32LittleEndian(bad.AsSpan(4), 62);
        BinaryPrimitives.WriteUInt16LittleEndian(bad.AsSpan(8), 0x06);
        BinaryPrimitives.WriteUInt32LittleEndian(bad.AsSpan(12), 0x7fff0000);
        Assert.False(SeccompFilterRun.Allows([bad], (int)Sysno.getpid, 0));
        byte[] unknown = new byte[8];
        BinaryPrimitives.WriteUInt16LittleEndian(unknown, 0xff);
        Assert.False(SeccompFilterRun.Allows([unknown], (int)Sysno.getpid, 0));
    }
}
