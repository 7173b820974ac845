using System.Runtime.InteropServices;

namespace Crisp.Linux;

/// <summary>An owned file descriptor in this process; closed when disposed or finalized.</summary>
public class UnixFd : SafeHandle
{
    public UnixFd() : base(-1, ownsHandle: true) { }

    public UnixFd(int fd, bool ownsHandle = true) : base(-1, ownsHandle) => SetHandle(fd);

    public override bool IsInvalid => (long)handle < 0;

    /// <summary>The descriptor number (valid until disposed).</summary>
    public int Fd => (int)handle;

    /// <summary>Gives up ownership: the caller now closes the fd.</summary>
    public int Detach()
    {
        int fd = Fd;
        SetHandleAsInvalid();
        return fd;
    }

    protected override bool ReleaseHandle() => FileIo.CloseRaw((int)handle) == 0;

    public override string ToString() => $"fd {Fd}";
}
