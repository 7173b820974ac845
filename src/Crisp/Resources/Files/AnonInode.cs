using System.Globalization;

namespace Crisp.Resources.Files;

/// <summary>Helpers for the anon_inode kinds (eventfd, signalfd, timerfd, epoll, inotify): how they
/// are recognised and how their fdinfo numbers are read.</summary>
public static class AnonInode
{
    /// <summary>Is the fd's link "anon_inode:[name]" (or "anon_inode:name", as inotify shows)?</summary>
    public static bool Is(OpenFd fd, string name) =>
        fd.Target == $"anon_inode:[{name}]" || fd.Target == $"anon_inode:{name}";

    /// <summary>A required fdinfo line's value; a missing one fails the dump naming fd and key.</summary>
    public static string Line(OpenFd fd, string key) =>
        fd.Info.Get(key)?.Trim() ?? throw new CrispException($"task {fd.Pid} fd {fd.Fd}: fdinfo has no '{key}' line");

    public static ulong Hex(string s) => ulong.Parse(s.Trim(), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
    public static ulong Dec(string s) => ulong.Parse(s.Trim(), CultureInfo.InvariantCulture);
    public static ulong Octal(string s) => Convert.ToUInt64(s.Trim(), 8);
}
