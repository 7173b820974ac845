namespace Crisp.Cli.CommandLine;

/// <summary>getopt_long as CRIU uses it: options anywhere (permuted), "--opt value" and "--opt=value",
/// unique long prefixes, bundled short flags, short options with attached values ("-v4", "-t123"),
/// optional arguments only attached ("-v", "-v4", "--verbosity=4"), and "--" ending options.</summary>
public static class ArgumentParser
{
    public static ParsedArguments Parse(IReadOnlyList<string> args, IReadOnlyList<OptionSpec> specs)
    {
        var result = new ParsedArguments();
        for (int i = 0; i < args.Count; i++)
        {
            string a = args[i];
            if (a == "--")
            {
                for (i++; i < args.Count; i++)
                    result.Positionals.Add(args[i]);
                break;
            }
            if (a.StartsWith("--", StringComparison.Ordinal))
                i = ParseLong(args, i, specs, result);
            else if (a.Length > 1 && a[0] == '-')
                i = ParseShortGroup(args, i, specs, result);
            else
                result.Positionals.Add(a);
        }
        return result;
    }

    private static int ParseLong(IReadOnlyList<string> args, int i, IReadOnlyList<OptionSpec> specs, ParsedArguments result)
    {
        string body = args[i][2..];
        int eq = body.IndexOf('=');
        string name = eq >= 0 ? body[..eq] : body;
        string? attached = eq >= 0 ? body[(eq + 1)..] : null;
        OptionSpec spec = FindLong(name, specs);
        string? value;
        switch (spec.Arg)
        {
            case ArgKind.None:
                if (attached is not null)
                    throw new UsageException($"option --{spec.Long} doesn't allow an argument");
                value = null;
                break;
            case ArgKind.Required:
                if (attached is not null)
                    value = attached;
                else if (i + 1 < args.Count)
                    value = args[++i];
                else
                    throw new UsageException($"option --{spec.Long} requires an argument");
                break;
            default:
                value = attached;
                break;
        }
        Accept(spec, value, result);
        return i;
    }

    private static int ParseShortGroup(IReadOnlyList<string> args, int i, IReadOnlyList<OptionSpec> specs, ParsedArguments result)
    {
        string token = args[i];
        for (int k = 1; k < token.Length; k++)
        {
            char c = token[k];
            OptionSpec spec = specs.FirstOrDefault(s => s.Short == c)
                ?? throw new UsageException($"unknown option -{c}");
            string rest = token[(k + 1)..];
            switch (spec.Arg)
            {
                case ArgKind.None:
                    Accept(spec, null, result);
                    continue;
                case ArgKind.Required:
                    if (rest.Length > 0)
                        Accept(spec, rest, result);
                    else if (i + 1 < args.Count)
                        Accept(spec, args[++i], result);
                    else
                        throw new UsageException($"option -{c} requires an argument");
                    return i;
                default:
                    Accept(spec, rest.Length > 0 ? rest : null, result);
                    return i;
            }
        }
        return i;
    }

    private static OptionSpec FindLong(string name, IReadOnlyList<OptionSpec> specs)
    {
        var exact = specs.FirstOrDefault(s => s.Long == name);
        if (exact is not null)
            return exact;
        var prefixed = specs.Where(s => s.Long.StartsWith(name, StringComparison.Ordinal)).ToList();
        return prefixed.Count switch
        {
            1 when name.Length > 0 => prefixed[0],
            0 or 1 => throw new UsageException($"unknown option --{name}"),
            _ => throw new UsageException($"option --{name} is ambiguous ({string.Join(", ", prefixed.Select(p => "--" + p.Long))})"),
        };
    }

    private static void Accept(OptionSpec spec, string? value, ParsedArguments result)
    {
        if (!spec.Supported)
            throw new UsageException($"option --{spec.Long} is not supported by crisp yet");
        if (spec.Negates is { } positive)
            result.Remove(positive);
        else
            result.Add(spec.Long, value);
    }
}
