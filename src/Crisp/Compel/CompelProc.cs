using System.Runtime.InteropServices;
using Crisp.Linux;

namespace Crisp.Compel;

/// <summary>The few /proc reads Compel needs (private until the shared /proc parsers land in Linux/).</summary>
internal static class CompelProc
{
    /// <summary>Thread ids in /proc/PID/task; null when the process is gone.</summary>
    public static List<int>? ListThreads(int pid)
    {
        try
        {
            var tids = new List<int>();
            foreach (var dir in Directory.EnumerateDirectories($"/proc/{pid}/task"))
                if (int.TryParse(Path.GetFileName(dir), out int tid))
                    tids.Add(tid);
            return tids;
        }
        catch (Exception e) when (e is DirectoryNotFoundException or FileNotFoundException or IOException)
        {
            return null;
        }
    }

    /// <summary>"Seccomp:" of /proc/PID/task/TID/status: 0 off, 1 strict, 2 filter; -1 if unreadable.</summary>
    public static int SeccompMode(int pid, int tid)
    {
        string? line = StatusLine(pid, tid, "Seccomp:");
        return line != null && int.TryParse(line, out int mode) ? mode : -1;
    }

    public static string? StatusLine(int pid, int tid, string key)
    {
        try
        {
            foreach (var line in File.ReadLines($"/proc/{pid}/task/{tid}/status"))
                if (line.StartsWith(key, StringComparison.Ordinal))
                    return line[key.Length..].Trim();
        }
        catch (Exception e) when (e is DirectoryNotFoundException or FileNotFoundException or IOException)
        {
        }
        return null;
    }

    /// <summary>State letter from /proc/TID/stat (R, S, D, T, t, Z…), '?' if gone.</summary>
    public static char State(int tid) => StatField(tid, 3) is { Length: > 0 } s ? s[0] : '?';

    /// <summary>CPU the thread last ran on (field 39 of stat), -1 if unknown.</summary>
    public static int LastCpu(int tid) => int.TryParse(StatField(tid, 39), out int cpu) ? cpu : -1;

    private static string? StatField(int tid, int field)
    {
        try
        {
            string stat = File.ReadAllText($"/proc/{tid}/stat");
            // comm may contain spaces and parentheses: fields restart after the last ')'.
            var rest = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            int index = field - 3;
            return index < rest.Length ? rest[index] : null;
        }
        catch (Exception e) when (e is DirectoryNotFoundException or FileNotFoundException or IOException)
        {
            return null;
        }
    }
}

/// <summary>sched_{get,set}affinity for the calling thread (private until Linux/ has a binding).</summary>
internal static unsafe class CompelAffinity
{
    private const int MaskBytes = 128;

    public static byte[] Get()
    {
        var mask = new byte[MaskBytes];
        fixed (byte* p = mask)
            RawSyscall.Call("sched_getaffinity(0)", Sysno.sched_getaffinity, 0, MaskBytes, (long)p);
        return mask;
    }

    public static void Set(byte[] mask)
    {
        fixed (byte* p = mask)
            RawSyscall.Call("sched_setaffinity(0)", Sysno.sched_setaffinity, 0, MaskBytes, (long)p);
    }

    public static bool TrySetSingle(int cpu)
    {
        if (cpu >= MaskBytes * 8)
            return false;
        byte* mask = stackalloc byte[MaskBytes];
        new Span<byte>(mask, MaskBytes).Clear();
        mask[cpu / 8] = (byte)(1 << (cpu % 8));
        return RawSyscall.TryCall(Sysno.sched_setaffinity, 0, MaskBytes, (long)mask) == 0;
    }
}
