namespace Crisp.Cli.CommandLine;

/// <summary>The result of parsing: positionals in order, and each option's values keyed by long name.</summary>
public sealed class ParsedArguments
{
    private readonly Dictionary<string, List<string?>> _values = new(StringComparer.Ordinal);

    public List<string> Positionals { get; } = [];

    internal void Add(string longName, string? value)
    {
        if (!_values.TryGetValue(longName, out var list))
            _values[longName] = list = [];
        list.Add(value);
    }

    /// <summary>"--no-X": X as if never given (getopt: the later of the two wins).</summary>
    internal void Remove(string longName) => _values.Remove(longName);

    public bool Has(string longName) => _values.ContainsKey(longName);

    /// <summary>The last value given (getopt semantics: a later option overrides an earlier one).</summary>
    public string? Get(string longName) => _values.TryGetValue(longName, out var l) ? l[^1] : null;

    public IReadOnlyList<string?> GetAll(string longName) =>
        _values.TryGetValue(longName, out var l) ? l : [];

    public int GetInt(string longName, int fallback)
    {
        string? v = Get(longName);
        if (v is null)
            return fallback;
        return int.TryParse(v, out int n) ? n : throw new UsageException($"option --{longName} needs a number, got '{v}'");
    }
}
