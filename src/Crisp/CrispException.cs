namespace Crisp;

/// <summary>An error crisp reports to the user as one line (what failed and where), then exits non-zero.
/// Anything else escaping to the CLI is a bug and is logged with its stack trace at -v4.</summary>
public class CrispException : Exception
{
    public CrispException(string message) : base(message) { }
    public CrispException(string message, Exception inner) : base(message, inner) { }
}
