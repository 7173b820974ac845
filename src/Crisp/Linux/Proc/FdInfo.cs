namespace Crisp.Linux.Proc;

/// <summary>/proc/PID/fdinfo/FD. pos/flags/mnt_id/ino are typed; every line is kept in order
/// (eventfd-count, tfd: lines of epoll, inotify wd lines, sigmask, timerfd fields, …).</summary>
public sealed class FdInfo
{
    public long Pos { get; private set; }
    /// <summary>Open flags (printed in octal by the kernel), including O_CLOEXEC.</summary>
    public int Flags { get; private set; }
    public int MntId { get; private set; }
    public ulong Ino { get; private set; }

    /// <summary>All lines, raw, in order.</summary>
    public List<string> Lines { get; } = [];

    /// <summary>(key, value) per line, in order: key is the text before the first ':'.</summary>
    public List<KeyValuePair<string, string>> Entries { get; } = [];

    /// <summary>Value of the first line with this key, or null.</summary>
    public string? Get(string key)
    {
        foreach (var e in Entries)
            if (e.Key == key)
                return e.Value;
        return null;
    }

    /// <summary>Values of every line with this key (e.g. all "tfd" lines of an epoll).</summary>
    public IEnumerable<string> GetAll(string key)
    {
        foreach (var e in Entries)
            if (e.Key == key)
                yield return e.Value;
    }

    public static FdInfo Read(int pid, int fd) => Parse(Procfs.Host.ReadText(pid, $"fdinfo/{fd}"));

    public static FdInfo Parse(string text)
    {
        var info = new FdInfo();
        foreach (var line in ProcFiles.Lines(text))
        {
            info.Lines.Add(line);
            ProcFiles.SplitKeyValue(line, out var key, out var value);
            info.Entries.Add(new(key, value));
            switch (key)
            {
                case "pos": info.Pos = ProcFiles.Dec(value); break;
                case "flags": info.Flags = (int)ProcFiles.Octal(value); break;
                case "mnt_id": info.MntId = (int)ProcFiles.Dec(value); break;
                case "ino": info.Ino = ProcFiles.UDec(value); break;
            }
        }
        return info;
    }

    /// <summary>Splits a line's "a:1 b: 2 c:3" tail into pairs (as in tfd/inotify/fanotify lines).
    /// Words without a colon and no value are kept with an empty value.</summary>
    public static List<KeyValuePair<string, string>> ParsePairs(string text)
    {
        var pairs = new List<KeyValuePair<string, string>>();
        var words = text.Split((char[])[' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
        for (int i = 0; i < words.Length; i++)
        {
            string w = words[i];
            int colon = w.IndexOf(':');
            if (colon < 0)
                pairs.Add(new(w, ""));
            else if (colon == w.Length - 1)
                pairs.Add(new(w[..^1], i + 1 < words.Length ? words[++i] : ""));
            else
                pairs.Add(new(w[..colon], w[(colon + 1)..]));
        }
        return pairs;
    }
}
