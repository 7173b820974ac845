namespace Crisp.Cli.Rpc;

/// <summary>CRIU's configuration file syntax (criu(8) "CONFIGURATION FILES", config.c parse_statement): one option a
/// line, its long name without "--", then at most one value, plain or in double quotes (\" inside); '#' starts a
/// comment; blank lines are skipped. Read into command-line words ("--name" or "--name=value") for crisp's parser.</summary>
public static class CriuConfigFile
{
    /// <summary>The file's options as words; none when the file does not exist (as CRIU, a missing file is no error).
    /// A line CRIU would refuse (two values, an unclosed quote) is refused with its number.</summary>
    public static List<string> Read(string path)
    {
        if (!File.Exists(path))
            return [];
        var words = new List<string>();
        int number = 0;
        foreach (string raw in File.ReadLines(path))
        {
            number++;
            string line = raw.Trim();
            if (line.Length == 0 || line[0] == '#')
                continue;
            int gap = line.IndexOfAny([' ', '\t']);
            if (gap < 0)
            {
                words.Add("--" + line);
                continue;
            }
            string name = line[..gap], rest = line[gap..].TrimStart();
            if (rest.Length == 0 || rest[0] == '#')
            {
                words.Add("--" + name);
                continue;
            }
            string value;
            if (rest[0] == '"')
            {
                int end = 1;
                while (end < rest.Length && (rest[end] != '"' || rest[end - 1] == '\\'))
                    end++;
                if (end >= rest.Length)
                    throw Bad(path, number, "a quote is not closed");
                value = rest[1..end].Replace("\\\"", "\"");
                rest = rest[(end + 1)..];
            }
            else
            {
                int hash = rest.IndexOf('#');
                if (hash >= 0)
                    rest = rest[..hash];
                int space = rest.IndexOfAny([' ', '\t']);
                value = space < 0 ? rest : rest[..space];
                rest = space < 0 ? "" : rest[space..];
            }
            rest = rest.Trim();
            if (rest.Length > 0 && rest[0] != '#')
                throw Bad(path, number, $"more than one value for {name}");
            words.Add($"--{name}={value}");
        }
        return words;
    }

    private static CrispException Bad(string path, int line, string why) =>
        new($"config_file {path}, line {line}: {why} (CRIU's syntax: an option's long name, then at most one value)");
}
