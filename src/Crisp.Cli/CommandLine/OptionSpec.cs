namespace Crisp.Cli.CommandLine;

public enum ArgKind { None, Required, Optional }

/// <summary>One command-line option, spelled as CRIU spells it. <see cref="Supported"/> false means CRIU has
/// it but crisp does not do it yet: it is refused by name rather than silently ignored.</summary>
public sealed record OptionSpec(string Long, char? Short, ArgKind Arg, string Help, bool Supported = true)
{
    /// <summary>For CRIU's "--no-X" twin of a boolean option X: the option it turns off.</summary>
    public string? Negates { get; init; }

    public string Display => Short is { } s ? $"-{s}, --{Long}" : $"--{Long}";
}
