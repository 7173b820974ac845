using Crisp.Cli.CommandLine;

namespace Crisp.Cli;

/// <summary>What a verb gets: its parsed arguments, the log, and where output goes.</summary>
public sealed class CommandContext(ParsedArguments args, Log log, TextWriter stdout)
{
    public ParsedArguments Args { get; } = args;
    public Log Log { get; } = log;
    public TextWriter Out { get; } = stdout;

    /// <summary>Positionals after the verb.</summary>
    public IReadOnlyList<string> Operands => Args.Positionals.Skip(1).ToList();

    public string ImagesDir => Args.Get("images-dir") ?? ".";

    public string RequireImagesDir() =>
        Args.Get("images-dir") ?? throw new UsageException("no images directory given (use -D DIR)");
}
