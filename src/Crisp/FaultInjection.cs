namespace Crisp;

/// <summary>Test hook, like CRIU's fault injection: <c>CRISP_FAULT=&lt;point&gt;</c> makes the named point of a
/// dump or restore fail as a real error would, so tests can prove a failure at any step leaves
/// nothing harmed. Points are named "dump:&lt;stage&gt;" / "restore:&lt;stage&gt;".</summary>
public sealed class FaultInjection
{
    public const string Variable = "CRISP_FAULT";

    private readonly string? _point;

    public FaultInjection(string? point) => _point = string.IsNullOrEmpty(point) ? null : point;

    public static FaultInjection FromEnvironment() => new(Environment.GetEnvironmentVariable(Variable));

    public static FaultInjection None { get; } = new(null);

    /// <summary>Throws when <paramref name="point"/> is the one asked to fail.</summary>
    public void At(string point)
    {
        if (_point == point)
            throw new CrispException($"fault injected at {point} ({Variable})");
    }
}
