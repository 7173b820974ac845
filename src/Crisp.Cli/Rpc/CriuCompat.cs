namespace Crisp.Cli.Rpc;

/// <summary>The CRIU release crisp answers as (`criu --version`, the RPC VERSION reply): the one whose images,
/// options and RPC crisp follows. Tools gate features on it (go-criu, runc and Podman want at least 3.x/4.0).</summary>
public static class CriuCompat
{
    public const int Major = 4, Minor = 2;

    public static string Version => $"{Major}.{Minor}";

    /// <summary>crisp's own version, for the line after CRIU's and the RPC reply's name.</summary>
    public static string Name => $"crisp {typeof(CriuCompat).Assembly.GetName().Version?.ToString(3)}";
}
