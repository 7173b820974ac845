namespace Crisp.Linux;

/// <summary>Syscall numbers the <c>crisp check</c> probes need (AIO, mounts, namespaces).</summary>
public static partial class Sysno
{
    public const long mount = 165, umount2 = 166, io_setup = 206, io_destroy = 207, io_getevents = 208, io_submit = 209,
        unshare = 272, setns = 308, move_mount = 429;
}
