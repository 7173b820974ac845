namespace Crisp.Linux.Proc;

/// <summary>/proc/PID/stat (or task/TID/stat). Field numbers follow proc(5): 1 pid, 2 comm, 3 state, ….</summary>
public sealed class ProcStat
{
    /// <summary>Fields 3.. as raw text, by field number (index 0..2 unused: pid and comm are parsed separately).</summary>
    private readonly string[] _fields;

    private ProcStat(int pid, string comm, string[] fields)
    {
        Pid = pid;
        Comm = comm;
        _fields = fields;
    }

    public int Pid { get; }
    /// <summary>Command name without the parentheses; may contain spaces and ')'.</summary>
    public string Comm { get; }

    /// <summary>Number of fields present (52 on current kernels).</summary>
    public int FieldCount => _fields.Length - 1;

    /// <summary>Raw text of field <paramref name="n"/> (1-based as in proc(5)).</summary>
    public string Raw(int n) => n switch
    {
        1 => Pid.ToString(),
        2 => Comm,
        _ => n < _fields.Length ? _fields[n] : throw new ArgumentOutOfRangeException(nameof(n), $"stat has {FieldCount} fields"),
    };

    /// <summary>Field as signed (fields like nice/priority/cutime can be negative).</summary>
    public long Long(int n) => ProcFiles.Dec(Raw(n));

    /// <summary>Field as unsigned (addresses, rsslim, masks).</summary>
    public ulong ULong(int n)
    {
        var s = Raw(n);
        return s.StartsWith('-') ? unchecked((ulong)ProcFiles.Dec(s)) : ProcFiles.UDec(s);
    }

    private ulong Opt(int n) => n < _fields.Length ? ULong(n) : 0;

    public char State => Raw(3)[0];
    public int PPid => (int)Long(4);
    public int Pgrp => (int)Long(5);
    public int Session => (int)Long(6);
    public int TtyNr => (int)Long(7);
    public int Tpgid => (int)Long(8);
    public uint Flags => (uint)ULong(9);
    public ulong MinFlt => ULong(10);
    public ulong CMinFlt => ULong(11);
    public ulong MajFlt => ULong(12);
    public ulong CMajFlt => ULong(13);
    public ulong UTime => ULong(14);
    public ulong STime => ULong(15);
    public long CUTime => Long(16);
    public long CSTime => Long(17);
    public long Priority => Long(18);
    public long Nice => Long(19);
    public int NumThreads => (int)Long(20);
    public long ItRealValue => Long(21);
    /// <summary>Start time in clock ticks since boot.</summary>
    public ulong StartTime => ULong(22);
    public ulong VSize => ULong(23);
    /// <summary>Resident pages.</summary>
    public long Rss => Long(24);
    public ulong RssLim => ULong(25);
    public ulong StartCode => ULong(26);
    public ulong EndCode => ULong(27);
    public ulong StartStack => ULong(28);
    public ulong KstkEsp => ULong(29);
    public ulong KstkEip => ULong(30);
    public ulong Signal => ULong(31);
    public ulong Blocked => ULong(32);
    public ulong SigIgnore => ULong(33);
    public ulong SigCatch => ULong(34);
    public ulong WChan => ULong(35);
    public int ExitSignal => (int)Long(38);
    public int Processor => (int)Long(39);
    public uint RtPriority => (uint)ULong(40);
    public uint Policy => (uint)ULong(41);
    public ulong DelayAcctBlkioTicks => Opt(42);
    public ulong GuestTime => Opt(43);
    public long CGuestTime => (long)Opt(44);
    public ulong StartData => Opt(45);
    public ulong EndData => Opt(46);
    public ulong StartBrk => Opt(47);
    public ulong ArgStart => Opt(48);
    public ulong ArgEnd => Opt(49);
    public ulong EnvStart => Opt(50);
    public ulong EnvEnd => Opt(51);
    public int ExitCode => (int)Opt(52);

    public static ProcStat Read(int pid) => Parse(Procfs.Host.ReadText(pid, "stat"));
    public static ProcStat ReadThread(int pid, int tid) => Parse(Procfs.Host.ReadText(pid, $"task/{tid}/stat"));

    /// <summary>comm is everything between the first '(' and the LAST ')': a name may itself hold ") ".</summary>
    public static ProcStat Parse(string text)
    {
        int open = text.IndexOf('(');
        int close = text.LastIndexOf(')');
        if (open < 0 || close < open)
            throw new FormatException($"bad stat: '{text}'");
        int pid = (int)ProcFiles.Dec(text.AsSpan(0, open).Trim());
        string comm = text[(open + 1)..close];
        var rest = text[(close + 1)..].Split((char[])[' ', '\n'], StringSplitOptions.RemoveEmptyEntries);
        if (rest.Length < 39)
            throw new FormatException($"stat has only {rest.Length + 2} fields");
        var fields = new string[rest.Length + 3];
        fields[0] = fields[1] = fields[2] = "";
        rest.CopyTo(fields, 3);
        return new ProcStat(pid, comm, fields);
    }
}
