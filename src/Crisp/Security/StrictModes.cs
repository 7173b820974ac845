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
        string dir = Path.GetFullPath(imagesDir);
        if (!Directory.Exists(dir))
            return;   // the caller reports a missing directory in its own words
        CheckOne(dir, FileStatus.Of(dir), restoringUid, isDir: true);
        foreach (string path in Directory.EnumerateFiles(dir).Concat(Directory.EnumerateDirectories(dir)).Order(StringComparer.Ordinal))
        {
            string name = Path.GetFileName(path);
            if (IsCheckpointFile(name))
                CheckOne(path, FileStatus.Of(path), restoringUid, isDir: false);
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
