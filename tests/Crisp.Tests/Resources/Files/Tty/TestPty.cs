using System.Text;
using Crisp.Linux;

namespace Crisp.Tests.Resources.Files.Tty;

/// <summary>A pty the test holds the master of (non-blocking), for a job to run on.</summary>
public sealed class TestPty : IDisposable
{
    private readonly StringBuilder _seen = new();

    public TestPty()
    {
        Master = FileIo.Open("/dev/ptmx", FileIo.O_RDWR | FileIo.O_NOCTTY | FileIo.O_NONBLOCK | FileIo.O_CLOEXEC);
        Terminals.SetInt(Master.Fd, Terminals.TIOCSPTLCK, 0);
        SlavePath = $"/dev/pts/{Terminals.GetInt(Master.Fd, Terminals.TIOCGPTN)}";
    }

    public UnixFd Master { get; }
    public string SlavePath { get; }

    public void Write(string text) => FileIo.WriteExactly(Master.Fd, Encoding.ASCII.GetBytes(text));

    /// <summary>Everything read from the master until <paramref name="want"/> shows up (and the rest of that
    /// line); fails after a generous timeout with what came.</summary>
    public string ReadUntil(string want, int seconds = 30)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        var buf = new byte[4096];
        while (true)
        {
            string s = _seen.ToString();
            int at = s.IndexOf(want, StringComparison.Ordinal);
            if (at >= 0 && s.IndexOf('\n', at) is int nl && nl >= 0)
            {
                _seen.Remove(0, nl + 1);
                return s[..(nl + 1)];
            }
            Assert.True(DateTime.UtcNow < deadline, $"\"{want}\" never came on {SlavePath}; got \"{s}\"");
            try
            {
                int n = FileIo.Read(Master.Fd, buf);
                if (n > 0)
                    _seen.Append(Encoding.ASCII.GetString(buf, 0, n));
                else
                    Thread.Sleep(20);
            }
            catch (SyscallException e) when (e.Errno == Errnos.EAGAIN || e.Errno == Errnos.EIO)
            {
                Thread.Sleep(20);
            }
        }
    }

    public void Dispose() => Master.Dispose();
}
