using Crisp.Images;
using Crisp.Linux;

namespace Crisp.Security;

/// <summary>sshd's StrictModes for a checkpoint about to be restored: restore turns image bytes into a running
/// process with the credentials written in them (root included), so anyone who can write the images can run
/// code as that user. Refused: an images directory or image file that a user other than the restoring user
/// and root owns, or that group or others may write; an image file that is not a regular file (a symlink
/// could point anywhere). Parent directories are not checked (a world-writable work folder holding a
/// private images directory is fine: the directory's own mode guards its entries).</summary>
public static class StrictModes
{
    public const string Option = "--insecure-images";

    /// <summary>Throws <see cref="InsecureImagesException"/> naming the first path that fails.</summary>
    public static void Check(string imagesDir) => Check(imagesDir, ProcessIds.Euid);

    public static void Check(string imagesDir, uint restoringUid)
    {
        if (!Directory.Exists(imagesDir))
            return;   // the caller reports a missing directory in its own words
        using var dir = ImageDirectory.Open(imagesDir);
        Check(dir, restoringUid);
    }

    /// <summary>The directory restore holds open: the open directory itself by fstat, its files by fstatat
    /// relative to it, so what is checked is what is read (no path to swap between check and open).</summary>
    public static void Check(ImageDirectory dir) => Check(dir, ProcessIds.Euid);

    public static void Check(ImageDirectory dir, uint restoringUid)
    {
        CheckOne(dir.Path, FileStatus.OfHandle(dir.Handle), restoringUid, isDir: true);
        foreach (var (name, _) in dir.List())
        {
            if (IsCheckpointFile(name) && FileStatus.TryAt(dir.Handle, name) is { } st)
                CheckOne(dir.PathOf(name), st, restoringUid, isDir: false);
        }
    }

    /// <summary>Files whose contents restore trusts: the images, the manifest and its signature.</summary>
    public static bool IsCheckpointFile(string name) =>
        ImageManifest.IsImageName(name) || ImageManifest.IsManifestName(name) || name == CheckpointSignature.FileName;

    private static void CheckOne(string path, FileStatus st, uint uid, bool isDir)
    {
        if (isDir ? !st.IsDirectory : !st.IsRegular)
            throw new InsecureImagesException(path, isDir ? "not a directory" : "not a regular file (a symlink or special file)");
        if (st.Uid != uid && st.Uid != 0)
            throw new InsecureImagesException(path, $"owned by uid {st.Uid}, neither the restoring user (uid {uid}) nor root");
        if ((st.Permissions & 0x12) != 0)   // S_IWGRP | S_IWOTH
            throw new InsecureImagesException(path,
                $"writable by {((st.Permissions & 0x2) != 0 ? "anyone" : $"group {st.Gid}")} (mode {ImageModes.Octal((UnixFileMode)st.Permissions)})");
    }
}

/// <summary>A checkpoint others could have written: one line naming the path, and what lets it through.</summary>
public sealed class InsecureImagesException(string path, string problem)
    : CrispException($"{path}: {problem}: refusing to restore images others could have changed (pass {StrictModes.Option} to restore anyway)")
{
    public string FilePath { get; } = path;
}
