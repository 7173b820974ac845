namespace Crisp.Linux.Proc;

/// <summary>/proc/PID/status. Known keys are typed properties; every key (known or not) is in <see cref="Fields"/>.
/// The typed ones are parsed from spans of the text (a dump reads two statuses per thread: a string per line and per
/// key was most of a 100-thread dump's allocations, and its collections); <see cref="Fields"/> is made on first use.</summary>
public sealed class ProcStatus
{
    private readonly string _text;
    private Dictionary<string, string>? _fields;

    private ProcStatus(string text) => _text = text;

    /// <summary>Every line's key → raw value (trimmed), in file order.</summary>
    public Dictionary<string, string> Fields => _fields ??= AllFields(_text);

    /// <summary>Whether the status has a "Seccomp:" line (kernels with CONFIG_SECCOMP).</summary>
    public bool HasSeccomp { get; private set; }

    public string Name { get; private set; } = "";
    /// <summary>State letter (R, S, D, T, t, Z, X, I).</summary>
    public char State { get; private set; }
    public int Tgid { get; private set; }
    public int Pid { get; private set; }
    public int PPid { get; private set; }
    public int TracerPid { get; private set; }
    public uint Umask { get; private set; }

    /// <summary>Real, effective, saved, filesystem.</summary>
    public uint[] Uid { get; private set; } = [];
    public uint[] Gid { get; private set; } = [];
    public uint[] Groups { get; private set; } = [];
    /// <summary>PIDs in each PID namespace, outermost (ours) first.</summary>
    public int[] NSpid { get; private set; } = [];
    public int[] NStgid { get; private set; } = [];
    public int[] NSpgid { get; private set; } = [];
    public int[] NSsid { get; private set; } = [];
    public int Threads { get; private set; }

    /// <summary>SigQ "queued/limit".</summary>
    public (ulong Queued, ulong Limit) SigQ { get; private set; }
    public ulong SigPnd { get; private set; }
    public ulong ShdPnd { get; private set; }
    public ulong SigBlk { get; private set; }
    public ulong SigIgn { get; private set; }
    public ulong SigCgt { get; private set; }

    public ulong CapInh { get; private set; }
    public ulong CapPrm { get; private set; }
    public ulong CapEff { get; private set; }
    public ulong CapBnd { get; private set; }
    public ulong CapAmb { get; private set; }

    public bool NoNewPrivs { get; private set; }
    /// <summary>0 disabled, 1 strict, 2 filter.</summary>
    public int Seccomp { get; private set; }
    /// <summary>Number of filters attached (Linux 5.9+); null when absent.</summary>
    public int? SeccompFilters { get; private set; }

    public string? SpeculationStoreBypass => Fields.GetValueOrDefault("Speculation_Store_Bypass");
    public string? SpeculationIndirectBranch => Fields.GetValueOrDefault("SpeculationIndirectBranch");

    public string? this[string key] => Fields.GetValueOrDefault(key);

    public static ProcStatus Read(int pid) => Parse(Procfs.Host.ReadText(pid, "status"));

    /// <summary>/proc/PID/task/TID/status: per-thread signal mask, seccomp, caps.</summary>
    public static ProcStatus ReadThread(int pid, int tid) => Parse(Procfs.Host.ReadText(pid, $"task/{tid}/status"));

    public static ProcStatus Parse(string text)
    {
        var s = new ProcStatus(text);
        for (var rest = text.AsSpan(); rest.Length > 0;)
        {
            int nl = rest.IndexOf('\n');
            var line = nl < 0 ? rest : rest[..nl];
            rest = nl < 0 ? default : rest[(nl + 1)..];
            int colon = line.IndexOf(':');
            if (colon >= 0)
                s.Apply(line[..colon], line[(colon + 1)..].Trim());
        }
        return s;
    }

    private static Dictionary<string, string> AllFields(string text)
    {
        var fields = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var line in ProcFiles.Lines(text))
        {
            int colon = line.IndexOf(':');
            if (colon >= 0)
                fields[line[..colon]] = line[(colon + 1)..].Trim();
        }
        return fields;
    }

    private void Apply(ReadOnlySpan<char> key, ReadOnlySpan<char> v)
    {
        switch (key)
        {
            case "Name": Name = v.ToString(); break;
            case "State": State = v.Length > 0 ? v[0] : '?'; break;
            case "Tgid": Tgid = Int(v); break;
            case "Pid": Pid = Int(v); break;
            case "PPid": PPid = Int(v); break;
            case "TracerPid": TracerPid = Int(v); break;
            case "Umask": Umask = (uint)ProcFiles.Octal(v); break;
            case "Uid": Uid = UInts(v); break;
            case "Gid": Gid = UInts(v); break;
            case "Groups": Groups = UInts(v); break;
            case "NSpid": NSpid = Ints(v); break;
            case "NStgid": NStgid = Ints(v); break;
            case "NSpgid": NSpgid = Ints(v); break;
            case "NSsid": NSsid = Ints(v); break;
            case "Threads": Threads = Int(v); break;
            case "SigQ":
                int slash = v.IndexOf('/');
                SigQ = (ProcFiles.UDec(v[..slash]), ProcFiles.UDec(v[(slash + 1)..]));
                break;
            case "SigPnd": SigPnd = ProcFiles.Hex(v); break;
            case "ShdPnd": ShdPnd = ProcFiles.Hex(v); break;
            case "SigBlk": SigBlk = ProcFiles.Hex(v); break;
            case "SigIgn": SigIgn = ProcFiles.Hex(v); break;
            case "SigCgt": SigCgt = ProcFiles.Hex(v); break;
            case "CapInh": CapInh = ProcFiles.Hex(v); break;
            case "CapPrm": CapPrm = ProcFiles.Hex(v); break;
            case "CapEff": CapEff = ProcFiles.Hex(v); break;
            case "CapBnd": CapBnd = ProcFiles.Hex(v); break;
            case "CapAmb": CapAmb = ProcFiles.Hex(v); break;
            case "NoNewPrivs": NoNewPrivs = Int(v) != 0; break;
            case "Seccomp": Seccomp = Int(v); HasSeccomp = true; break;
            case "Seccomp_filters": SeccompFilters = Int(v); break;
        }
    }

    private static int Int(ReadOnlySpan<char> v) => (int)ProcFiles.Dec(v);

    private static int[] Ints(ReadOnlySpan<char> v)
    {
        var values = new int[CountTokens(v)];
        Tokens(v, values, t => (int)ProcFiles.Dec(t));
        return values;
    }

    private static uint[] UInts(ReadOnlySpan<char> v)
    {
        var values = new uint[CountTokens(v)];
        Tokens(v, values, t => (uint)ProcFiles.UDec(t));
        return values;
    }

    private delegate T TokenParser<T>(ReadOnlySpan<char> token);

    /// <summary>Counts the blank-separated tokens of <paramref name="v"/>.</summary>
    private static int CountTokens(ReadOnlySpan<char> v)
    {
        int n = 0;
        for (int i = 0; i < v.Length;)
        {
            while (i < v.Length && v[i] is ' ' or '\t')
                i++;
            if (i == v.Length)
                break;
            n++;
            while (i < v.Length && v[i] is not (' ' or '\t'))
                i++;
        }
        return n;
    }

    /// <summary>Parses the blank-separated tokens of <paramref name="v"/> into <paramref name="into"/>.</summary>
    private static void Tokens<T>(ReadOnlySpan<char> v, T[] into, TokenParser<T> parse)
    {
        int n = 0;
        for (int i = 0; i < v.Length && n < into.Length;)
        {
            while (i < v.Length && v[i] is ' ' or '\t')
                i++;
            int start = i;
            while (i < v.Length && v[i] is not (' ' or '\t'))
                i++;
            if (i > start)
                into[n++] = parse(v[start..i]);
        }
    }
}
