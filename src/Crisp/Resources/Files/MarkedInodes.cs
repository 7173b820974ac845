using Crisp.Images.Proto;
using Crisp.Linux;
using Crisp.Linux.Proc;

namespace Crisp.Resources.Files;

/// <summary>The inodes inotify watches and fanotify inode marks are on: fdinfo names each by device,
/// inode number and file handle. Dump finds a path for it (open_by_handle_at through the task's mount
/// of that device) and keeps it in fh_entry.path; restore checks the path still leads to that inode.</summary>
public static class MarkedInodes
{
    /// <summary>The fh_entry (handle padded to MAX_HANDLE_SZ as CRIU writes it, path, mount) of a watched
    /// inode; <paramref name="what"/> names the watch or mark in the error when no path is found.</summary>
    public static fh_entry Handle(OpenFd fd, string what, uint sdev, ulong ino, int bytes, int type, string hex)
    {
        var handle = Convert.FromHexString(hex);
        var (path, mntId) = Resolve(fd, what, sdev, ino, type, handle.AsSpan(0, Math.Min(bytes, handle.Length)));
        var fh = new fh_entry { Bytes = (uint)bytes, Type = (uint)type, Path = path, MntId = (uint)mntId };
        var padded = new byte[FileHandles.MaxBytes];
        handle.AsSpan(0, Math.Min(handle.Length, padded.Length)).CopyTo(padded);
        for (int i = 0; i < padded.Length; i += 8)
            fh.Handle.Add(BitConverter.ToUInt64(padded, i));
        return fh;
    }

    /// <summary>Opens (O_PATH) the image's path of a watched inode, refusing it unless it is that inode.</summary>
    public static UnixFd Open(fh_entry fh, ulong ino, string what)
    {
        string path = fh.HasPath ? fh.Path : throw new CrispException($"{what}: the image has no path for inode {ino}");
        try
        {
            var f = FileIo.Open(path, FileIo.O_PATH);
            ulong now = FdOps.Stat(f.Fd).Ino;
            if (now == ino)
                return f;
            f.Dispose();
            throw new CrispException($"{what}: {path} is inode {now}, was {ino}");
        }
        catch (SyscallException ex)
        {
            throw new CrispException($"{what}: {path}: {ex.Message}");
        }
    }

    public static FileStat StatPath(string path)
    {
        using var f = FileIo.Open(path, FileIo.O_PATH);
        return FdOps.Stat(f.Fd);
    }

    /// <summary>The path of the watched inode and the mount it was found through.</summary>
    private static (string Path, int MntId) Resolve(OpenFd fd, string what, uint sdev, ulong ino, int type, ReadOnlySpan<byte> handle)
    {
        uint major = sdev >> 20, minor = sdev & 0xfffff;
        foreach (var m in MountInfo.Read(fd.Pid).Where(m => m.Major == major && m.Minor == minor))
        {
            try
            {
                // open_by_handle_at refuses an O_PATH mount fd (EBADF)
                using var mount = FileIo.Open(Procfs.Host.Path(fd.Pid, $"root{m.MountPoint}"), FileIo.O_RDONLY | FileIo.O_DIRECTORY);
                using var target = FileHandles.Open(mount.Fd, type, handle, FileIo.O_PATH);
                string? path = new FileInfo($"/proc/self/fd/{target.Fd}").LinkTarget;
                if (path is null || !path.StartsWith('/'))
                    continue;
                var st = StatPath(path);
                if (st.Ino == ino)
                    return (path, m.MountId);
            }
            catch (SyscallException)
            {
            }
        }
        throw new CrispException($"task {fd.Pid} fd {fd.Fd}: {what} on inode {ino} of device " +
            $"{major}:{minor}: no path found for it");
    }
}
