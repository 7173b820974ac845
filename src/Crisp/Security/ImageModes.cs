namespace Crisp.Security;

/// <summary>The modes crisp gives what it creates for a checkpoint: image files, the manifest, the log, the
/// stats (<see cref="File"/>) and a directory it creates (<see cref="Directory"/>). Private by default: a
/// checkpoint holds the process's memory (keys, tokens), so only the dumping user may read it.</summary>
public sealed record ImageModes(UnixFileMode File, UnixFileMode Directory)
{
    public const string Option = "--images-mode";

    /// <summary>0600 files in a 0700 directory.</summary>
    public static ImageModes Private { get; } = new((UnixFileMode)0x180, (UnixFileMode)0x1C0);

    public bool IsPrivate => this == Private;

    /// <summary>From an octal file mode such as 0640 (--images-mode): the directory gets the same bits plus
    /// x wherever r is set, so whoever may read the files may also reach them.</summary>
    public static ImageModes Parse(string octal)
    {
        if (octal.Length is 0 or > 4 || !octal.All(c => c is >= '0' and <= '7'))
            throw new CrispException($"bad {Option} '{octal}': an octal file mode such as 0600 or 0640");
        int mode = Convert.ToInt32(octal, 8);
        if ((mode & ~0x1FF) != 0)
            throw new CrispException($"bad {Option} '{octal}': only permission bits (no setuid, setgid or sticky)");
        if ((mode & 0x180) != 0x180)
            throw new CrispException($"bad {Option} '{octal}': the owner must keep read and write (0600)");
        int dir = mode | ((mode & 0x124) >> 2);
        return new ImageModes((UnixFileMode)mode, (UnixFileMode)dir);
    }

    public static string Octal(UnixFileMode mode) => "0" + Convert.ToString((int)mode & 0xFFF, 8).PadLeft(3, '0');

    /// <summary>One warning line when a dump with the private default goes into an existing directory that
    /// others may list or enter (the files stay 0600, but names and sizes show); null when there is none.</summary>
    public string? ExposureWarning(Images.ImageDirectory dir)
    {
        if (!IsPrivate)
            return null;   // the user chose the modes on purpose
        uint perms = FileStatus.OfHandle(dir.Handle).Permissions;
        return (perms & 0x3F) == 0 ? null
            : $"images dir {dir.Path} is open to others (mode {Octal((UnixFileMode)perms)}): the images are private (0600) but their names and sizes show; chmod 700 it, or pass {Option} to choose on purpose";
    }
}
