namespace Crisp.Cli.CommandLine;

/// <summary>Bad command line: reported as one line and exit code 1.</summary>
public sealed class UsageException(string message) : Exception(message);
