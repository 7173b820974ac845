using System.Runtime.InteropServices;
using Crisp.Linux;

namespace Crisp.Check;

/// <summary>autofs: mountinfo shows an autofs mount's pipe_ino (needed to restore its pipe). An autofs
/// mount already here answers; else one is made in a scratch mount namespace.</summary>
public sealed class AutofsProbe() : CriuProbe("autofs")
{
    protected override ProbeResult Check()
    {
        if (Verdict("/proc/self/mountinfo", "an existing") is { } existing)
            return existing;
        return ProbeSys.InPrivateMountNamespace(() =>
        {
            var (read, write) = Pipe();
            using (read)
            using (write)
            {
                if (ProbeSys.ScratchTmpfs(out string? why) is not { } dir)
                    return ProbeResult.Missing(why!);
                long pgrp = RawSyscall.TryCall(Sysno.getpgid, 0);
                long r = ProbeSys.Mount("crisp-check", dir, "autofs", 0, $"fd={write.Fd},pgrp={pgrp},minproto=5,maxproto=5,direct");
                if (r == -19)   // ENODEV: the kernel knows no such filesystem type
                    return ProbeResult.Missing("no autofs filesystem in this kernel (mount autofs: ENODEV)");
                if (r < 0)
                    return ProbeResult.Missing($"mount autofs: {ProbeSys.Err(r)}");
                try
                {
                    return Verdict("/proc/thread-self/mountinfo", "a scratch")
                        ?? ProbeResult.Missing("the autofs mount made is not in mountinfo");
                }
                finally
                {
                    ProbeSys.Umount(dir);
                }
            }
        });
    }

    private static ProbeResult? Verdict(string mountinfo, string which)
    {
        string? line = File.ReadLines(mountinfo).FirstOrDefault(l => l.Contains(" - autofs ", StringComparison.Ordinal));
        if (line is null)
            return null;
        return line.Contains("pipe_ino=", StringComparison.Ordinal)
            ? ProbeResult.Supported($"{which} autofs mount shows pipe_ino in mountinfo")
            : ProbeResult.Missing($"{which} autofs mount has no pipe_ino in mountinfo");
    }

    private static unsafe (UnixFd, UnixFd) Pipe()
    {
        int* fds = stackalloc int[2];
        RawSyscall.Call("pipe2", Sysno.pipe2, (long)fds, FileIo.O_CLOEXEC);
        return (new UnixFd(fds[0]), new UnixFd(fds[1]));
    }
}

/// <summary>move_mount_set_group: MOVE_MOUNT_SET_GROUP copies a shared mount's peer group to another
/// mount (how sharing is restored). Done in a scratch mount namespace.</summary>
public sealed unsafe class MoveMountSetGroupProbe() : CriuProbe("move_mount_set_group")
{
    private const long AT_FDCWD = -100, MOVE_MOUNT_SET_GROUP = 0x100;

    protected override ProbeResult Check() => ProbeSys.InPrivateMountNamespace(() =>
    {
        if (ProbeSys.ScratchTmpfs(out string? why) is not { } dir)
            return ProbeResult.Missing(why!);
        try
        {
            string sub = Path.Combine(dir, "sub");
            long r = ProbeSys.Mount(null, dir, null, ProbeSys.MS_PRIVATE);
            Directory.CreateDirectory(sub);
            if (r >= 0)
                r = ProbeSys.Mount(sub, sub, null, ProbeSys.MS_BIND);
            if (r >= 0)
                r = ProbeSys.Mount(null, dir, null, ProbeSys.MS_SHARED);
            if (r < 0)
                return ProbeResult.Missing($"preparing scratch mounts: {ProbeSys.Err(r)}");
            fixed (byte* from = ProbeSys.Z(dir))
            fixed (byte* to = ProbeSys.Z(sub))
                r = RawSyscall.TryCall(Sysno.move_mount, AT_FDCWD, (long)from, AT_FDCWD, (long)to, MOVE_MOUNT_SET_GROUP);
            if (r < 0)
                return ProbeResult.Missing($"move_mount(MOVE_MOUNT_SET_GROUP): {ProbeSys.Err(r)}");
            string? line = File.ReadLines("/proc/thread-self/mountinfo").LastOrDefault(l => l.Split(' ')[4] == sub);
            return line is not null && line.Contains(" shared:", StringComparison.Ordinal)
                ? ProbeResult.Supported("move_mount(MOVE_MOUNT_SET_GROUP) made a bind mount a peer of a shared mount")
                : ProbeResult.Missing("move_mount(MOVE_MOUNT_SET_GROUP) returned 0 but the target is not shared");
        }
        finally
        {
            ProbeSys.Umount(dir);
        }
    });
}

/// <summary>overlayfs_maps: /proc/PID/maps shows an overlayfs file's own dev:ino (what stat says), so
/// a mapping of it can be matched to the file. Done in a scratch mount namespace.</summary>
public sealed class OverlayfsMapsProbe() : CriuProbe("overlayfs_maps")
{
    protected override ProbeResult Check() => ProbeSys.InPrivateMountNamespace(() =>
    {
        if (ProbeSys.ScratchTmpfs(out string? why) is not { } dir)
            return ProbeResult.Missing(why!);
        try
        {
            foreach (string d in new[] { "l", "u", "w", "m" })
                Directory.CreateDirectory(Path.Combine(dir, d));
            string merged = Path.Combine(dir, "m");
            long r = ProbeSys.Mount("crisp-check", merged, "overlay", 0, $"lowerdir={dir}/l,upperdir={dir}/u,workdir={dir}/w");
            if (r < 0)
                return ProbeResult.Missing($"mount overlay: {ProbeSys.Err(r)}");
            return Compare(Path.Combine(merged, "test"));
        }
        finally
        {
            ProbeSys.Umount(Path.Combine(dir, "m"));
            ProbeSys.Umount(dir);
        }
    });

    private static ProbeResult Compare(string path)
    {
        using var fd = FileIo.Open(path, FileIo.O_RDWR | FileIo.O_CREAT | FileIo.O_CLOEXEC, 0x1a4);
        FileIo.Truncate(fd.Fd, 4096);
        nint at = Mman.Map(0, 4096, Mman.PROT_READ, Mman.MAP_SHARED, fd.Fd);
        try
        {
            string prefix = $"{(ulong)at:x}-";
            string? line = File.ReadLines("/proc/self/maps").FirstOrDefault(l => l.StartsWith(prefix, StringComparison.Ordinal));
            if (line is null)
                return ProbeResult.Missing("the overlayfs mapping is not in /proc/self/maps");
            var f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            var dev = f[3].Split(':');
            (uint major, uint minor, ulong ino) maps = (Convert.ToUInt32(dev[0], 16), Convert.ToUInt32(dev[1], 16), ulong.Parse(f[4]));
            var st = Stat(fd.Fd);
            return maps == st
                ? ProbeResult.Supported($"maps shows the overlayfs file as {maps.major:x}:{maps.minor:x} {maps.ino}, as fstat does")
                : ProbeResult.Missing($"maps shows {maps.major:x}:{maps.minor:x} {maps.ino}, fstat {st.Item1:x}:{st.Item2:x} {st.Item3}");
        }
        finally
        {
            Mman.Unmap(at, 4096);
        }
    }

    /// <summary>(major, minor, inode) of an open file by fstat.</summary>
    private static unsafe (uint, uint, ulong) Stat(int fd)
    {
        byte* st = stackalloc byte[144];
        RawSyscall.Call("fstat", Sysno.fstat, fd, (long)st);
        ulong dev = *(ulong*)st, ino = *(ulong*)(st + 8);
        uint major = (uint)(((dev >> 32) & 0xfffff000) | ((dev >> 8) & 0xfff));
        uint minor = (uint)(((dev >> 12) & 0xffffff00) | (dev & 0xff));
        return (major, minor, ino);
    }
}
