namespace Crisp.Cli.Commands;

/// <summary>The input of decode: a file as given, or stdin copied to a temporary file (images are read by path).</summary>
internal sealed class ImageInput : IDisposable
{
    private readonly bool _temporary;

    private ImageInput(string path, string name, bool temporary) => (Path, Name, _temporary) = (path, name, temporary);

    public string Path { get; }
    /// <summary>What errors call it: the path, or "stdin".</summary>
    public string Name { get; }

    public static ImageInput Open(string? path)
    {
        if (path is not null)
            return File.Exists(path) ? new ImageInput(path, path, false) : throw new CrispException($"{path}: no such file");
        string tmp = System.IO.Path.GetTempFileName();
        using (var stdin = Console.OpenStandardInput())
        using (var file = File.Create(tmp))
            stdin.CopyTo(file);
        return new ImageInput(tmp, "stdin", true);
    }

    public void Dispose()
    {
        if (_temporary)
            File.Delete(Path);
    }
}
