namespace Crisp;

/// <summary>An error crisp reports to the user as one line (what failed and where), then exits non-zero.
/// Anything else escaping to the CLI is a bug and is logged with its stack trace at -v4.</summary>
public class CrispException : Exception
{
    public CrispException(string message) : base(message) { }
    public CrispException(string message, Exception inner) : base(message, inner) { }

    /// <summary>The errno a caller that wants a number gets (CRIU's cr_errno in an RPC response): EINVAL unless
    /// the error knows better (ESRCH for a task that is gone, EEXIST for a PID already taken, …).</summary>
    public int Errno { get; init; } = Linux.Errnos.EINVAL;
}
