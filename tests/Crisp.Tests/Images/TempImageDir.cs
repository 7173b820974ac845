using Crisp.Images;

namespace Crisp.Tests.Images;

/// <summary>A throwaway image directory under /tmp.</summary>
internal sealed class TempImageDir : IDisposable
{
    public TempImageDir()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "crisp-img-" + Guid.NewGuid().ToString("N"));
        Dir = ImageDirectory.Create(Path);
    }

    public string Path { get; }
    public ImageDirectory Dir { get; }

    public string File(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose()
    {
        try { Directory.Delete(Path, recursive: true); } catch (IOException) { }
    }
}
