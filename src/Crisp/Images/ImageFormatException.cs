namespace Crisp.Images;

/// <summary>An image file is missing, malformed or not what its name says. The message is one line naming the file.</summary>
public sealed class ImageFormatException : CrispException
{
    public ImageFormatException(string path, long offset, string problem, Exception? inner = null)
        : base($"{path}: at offset {offset}: {problem}", inner!)
    {
        FilePath = path;
        Offset = offset;
        Problem = problem;
    }

    public string FilePath { get; }
    public long Offset { get; }
    public string Problem { get; }
}
