namespace Crisp;

/// <summary>Levels as CRIU numbers them (-vN): 0 silent, 1 errors, 2 warnings, 3 info, 4 debug.</summary>
public enum LogLevel { Error = 1, Warn = 2, Info = 3, Debug = 4 }

/// <summary>The log of one crisp run. Passed explicitly (no global), thread-safe, prefixed with the
/// time since start so a -v4 log shows where the time went.</summary>
public sealed class Log : IDisposable
{
    private TextWriter? _writer;
    private readonly Func<TextWriter>? _open;
    private readonly bool _ownsWriter;
    private readonly object _gate = new();
    private readonly long _start = System.Diagnostics.Stopwatch.GetTimestamp();

    public int Verbosity { get; }

    public Log(TextWriter writer, int verbosity, bool ownsWriter = false)
    {
        _writer = writer;
        Verbosity = verbosity;
        _ownsWriter = ownsWriter;
    }

    /// <summary>A log to stderr, opened at its first line: most runs at the default verbosity write none, and
    /// Console.Error's set-up (encoding, handle, writer) cost ~0.5 ms of every small dump's start-up.</summary>
    public static Log ToStderr(int verbosity) => new(verbosity, static () => Console.Error);

    private Log(int verbosity, Func<TextWriter> open)
    {
        _open = open;
        Verbosity = verbosity;
    }

    // Racing first lines open the same Console.Error.
    private TextWriter Writer => _writer ??= _open!();

    /// <summary>A log that drops everything (tests, library callers that don't care).</summary>
    public static Log Null { get; } = new(TextWriter.Null, 0);

    public bool Enabled(LogLevel level) => (int)level <= Verbosity;

    /// <summary>Whether this log writes to <paramref name="writer"/> (e.g. stderr, where the CLI prints its one error line).</summary>
    public bool WritesTo(TextWriter writer) => ReferenceEquals(Writer, writer);

    public void Write(LogLevel level, string message)
    {
        if (!Enabled(level))
            return;
        double t = System.Diagnostics.Stopwatch.GetElapsedTime(_start).TotalSeconds;
        string tag = level switch { LogLevel.Error => "Error", LogLevel.Warn => "Warn", LogLevel.Info => "Info", _ => "Debug" };
        lock (_gate)
        {
            Writer.WriteLine($"({t,10:F6}) {tag}: {message}");
            Writer.Flush();
        }
    }

    public void Error(string m) => Write(LogLevel.Error, m);
    public void Warn(string m) => Write(LogLevel.Warn, m);
    public void Info(string m) => Write(LogLevel.Info, m);
    public void Debug(string m) => Write(LogLevel.Debug, m);

    // An interpolated Info or Debug line is formatted only when the log writes it: at the default verbosity a dump
    // used to format (and allocate) every one of its debug lines only to drop them.
    public void Info([System.Runtime.CompilerServices.InterpolatedStringHandlerArgument("")] ref LogMessage<InfoLevel> m)
    {
        if (m.Enabled)
            Write(LogLevel.Info, m.ToStringAndClear());
    }

    public void Debug([System.Runtime.CompilerServices.InterpolatedStringHandlerArgument("")] ref LogMessage<DebugLevel> m)
    {
        if (m.Enabled)
            Write(LogLevel.Debug, m.ToStringAndClear());
    }

    public void Dispose()
    {
        if (_ownsWriter)
            _writer?.Dispose();
    }
}

/// <summary>A level a <see cref="LogMessage{TLevel}"/> is for.</summary>
public interface ILogLevel
{
    static abstract LogLevel Level { get; }
}

public readonly struct InfoLevel : ILogLevel
{
    public static LogLevel Level => LogLevel.Info;
}

public readonly struct DebugLevel : ILogLevel
{
    public static LogLevel Level => LogLevel.Debug;
}

/// <summary>An interpolated log line, built only when <see cref="Log"/> writes its level.</summary>
[System.Runtime.CompilerServices.InterpolatedStringHandler]
public ref struct LogMessage<TLevel> where TLevel : ILogLevel
{
    private System.Runtime.CompilerServices.DefaultInterpolatedStringHandler _text;

    public LogMessage(int literalLength, int formattedCount, Log log, out bool enabled)
    {
        Enabled = enabled = log.Enabled(TLevel.Level);
        _text = enabled ? new(literalLength, formattedCount) : default;
    }

    public bool Enabled { get; }

    public void AppendLiteral(string value) => _text.AppendLiteral(value);
    public void AppendFormatted<T>(T value) => _text.AppendFormatted(value);
    public void AppendFormatted<T>(T value, string? format) => _text.AppendFormatted(value, format);
    public void AppendFormatted<T>(T value, int alignment) => _text.AppendFormatted(value, alignment);
    public void AppendFormatted<T>(T value, int alignment, string? format) => _text.AppendFormatted(value, alignment, format);
    public void AppendFormatted(ReadOnlySpan<char> value) => _text.AppendFormatted(value);
    public void AppendFormatted(string? value) => _text.AppendFormatted(value);

    public string ToStringAndClear() => _text.ToStringAndClear();
}
