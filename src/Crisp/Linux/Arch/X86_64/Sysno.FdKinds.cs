namespace Crisp.Linux;

/// <summary>Syscall numbers for the fd kinds (inotify, fanotify, file handles, ownership and times).</summary>
public static partial class Sysno
{
    public const long fchmod = 91, fchown = 93, inotify_add_watch = 254, inotify_rm_watch = 255,
        utimensat = 280, inotify_init1 = 294, fanotify_init = 300, fanotify_mark = 301,
        name_to_handle_at = 303, open_by_handle_at = 304,
        mq_open = 240, mq_unlink = 241, mq_timedsend = 242, mq_timedreceive = 243, mq_notify = 244, mq_getsetattr = 245;
}
