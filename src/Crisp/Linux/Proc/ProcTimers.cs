namespace Crisp.Linux.Proc;

/// <summary>A POSIX timer from /proc/PID/timers (settings come from timer_gettime in the task).</summary>
public sealed record PosixTimerInfo(int Id, int Signal, ulong SigevValue, string NotifyMode, string NotifyTarget, int NotifyTid, int ClockId);

/// <summary>/proc/PID/timers:
/// "ID: 0 / signal: 14/0000000000000000 / notify: signal/pid.1234 / ClockID: 1".</summary>
public static class ProcTimers
{
    public static List<PosixTimerInfo> Read(int pid) => Parse(Procfs.Host.ReadText(pid, "timers"));

    public static List<PosixTimerInfo> Parse(string text)
    {
        var list = new List<PosixTimerInfo>();
        int id = -1, signal = 0, tid = 0, clock = 0;
        ulong value = 0;
        string mode = "", target = "";
        foreach (var line in ProcFiles.Lines(text))
        {
            ProcFiles.SplitKeyValue(line, out var key, out var v);
            switch (key)
            {
                case "ID":
                    if (id >= 0)
                        list.Add(new PosixTimerInfo(id, signal, value, mode, target, tid, clock));
                    id = int.Parse(v);
                    signal = tid = clock = 0;
                    value = 0;
                    mode = target = "";
                    break;
                case "signal":
                    int slash = v.IndexOf('/');
                    signal = int.Parse(v.AsSpan(0, slash));
                    var hex = v.AsSpan(slash + 1);
                    value = ProcFiles.Hex(hex.StartsWith("0x") ? hex[2..] : hex);
                    break;
                case "notify":
                    // "signal/pid.1234", "thread/tid.1235", "none/pid.1234"
                    int s = v.IndexOf('/'), dot = v.LastIndexOf('.');
                    mode = v[..s];
                    target = v[(s + 1)..dot];
                    tid = int.Parse(v.AsSpan(dot + 1));
                    break;
                case "ClockID":
                    clock = int.Parse(v);
                    break;
            }
        }
        if (id >= 0)
            list.Add(new PosixTimerInfo(id, signal, value, mode, target, tid, clock));
        return list;
    }
}
