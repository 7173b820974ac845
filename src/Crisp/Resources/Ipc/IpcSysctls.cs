using System.Globalization;
using Crisp.Images.Proto;

namespace Crisp.Resources.Ipc;

/// <summary>The IPC namespace's sysctls as CRIU's ipc_var_entry holds them. /proc/sys/kernel/{sem,msg*,shm*} and
/// /proc/sys/fs/mqueue/* show the namespace of the thread that opens them (<see cref="IpcNamespaceThread"/>).</summary>
public static class IpcSysctls
{
    private const string Kernel = "/proc/sys/kernel/", Mqueue = "/proc/sys/fs/mqueue/";

    public static ipc_var_entry Read()
    {
        var e = new ipc_var_entry
        {
            MsgCtlmax = U32(Kernel + "msgmax"),
            MsgCtlmnb = U32(Kernel + "msgmnb"),
            MsgCtlmni = U32(Kernel + "msgmni"),
            AutoMsgmni = U32(Kernel + "auto_msgmni"),
            ShmCtlmax = U64(Kernel + "shmmax"),
            ShmCtlall = U64(Kernel + "shmall"),
            ShmCtlmni = U32(Kernel + "shmmni"),
            ShmRmidForced = U32(Kernel + "shm_rmid_forced"),
            MqQueuesMax = U32(Mqueue + "queues_max"),
            MqMsgMax = U32(Mqueue + "msg_max"),
            MqMsgsizeMax = U32(Mqueue + "msgsize_max"),
            MqMsgDefault = U32(Mqueue + "msg_default"),
            MqMsgsizeDefault = U32(Mqueue + "msgsize_default"),
        };
        e.SemCtls.AddRange(Words(Kernel + "sem").Select(w => uint.Parse(w, CultureInfo.InvariantCulture)));
        // -1 is "no id requested" and cannot be written back (CRIU leaves such fields out too).
        if (NextId("msg_next_id") is { } msg) e.MsgNextId = msg;
        if (NextId("sem_next_id") is { } sem) e.SemNextId = sem;
        if (NextId("shm_next_id") is { } shm) e.ShmNextId = shm;
        return e;
    }

    /// <summary>Writes every limit of <paramref name="e"/> that differs from the namespace's current value
    /// (next ids and shm_rmid_forced are written by <see cref="WriteLate"/>). Returns warnings for values the
    /// kernel refused.</summary>
    public static List<string> WriteLimits(ipc_var_entry e)
    {
        var warnings = new List<string>();
        void Set(string path, string value)
        {
            if (!File.Exists(path))
            {
                warnings.Add($"{path} does not exist here: left as it is (dumped {value})");
                return;
            }
            if (string.Join(' ', Words(path)) == value)
                return;
            try { File.WriteAllText(path, value); }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                warnings.Add($"{path}: cannot be set to {value} ({ex.Message})");
            }
        }
        if (e.SemCtls.Count > 0)
            Set(Kernel + "sem", string.Join(' ', e.SemCtls));
        Set(Kernel + "msgmax", S(e.MsgCtlmax));
        Set(Kernel + "msgmnb", S(e.MsgCtlmnb));
        Set(Kernel + "msgmni", S(e.MsgCtlmni));
        Set(Kernel + "shmmax", S(e.ShmCtlmax));
        Set(Kernel + "shmall", S(e.ShmCtlall));
        Set(Kernel + "shmmni", S(e.ShmCtlmni));
        Set(Mqueue + "queues_max", S(e.MqQueuesMax));
        Set(Mqueue + "msg_max", S(e.MqMsgMax));
        Set(Mqueue + "msgsize_max", S(e.MqMsgsizeMax));
        if (e.HasMqMsgDefault) Set(Mqueue + "msg_default", S(e.MqMsgDefault));
        if (e.HasMqMsgsizeDefault) Set(Mqueue + "msgsize_default", S(e.MqMsgsizeDefault));
        // auto_msgmni is a no-op knob since Linux 4.0 (reads 0); only a differing value is worth a try.
        Set(Kernel + "auto_msgmni", S(e.AutoMsgmni));
        return warnings;
    }

    /// <summary>After every object exists and is attached: the next-id knobs (each object's creation used
    /// them up) and shm_rmid_forced (set earlier, it would destroy fresh segments not attached yet).</summary>
    public static List<string> WriteLate(ipc_var_entry e)
    {
        var warnings = new List<string>();
        void Set(string name, string value)
        {
            try { File.WriteAllText(Kernel + name, value); }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                warnings.Add($"kernel.{name}: cannot be set to {value} ({ex.Message})");
            }
        }
        if (e.HasMsgNextId) Set("msg_next_id", S(e.MsgNextId));
        if (e.HasSemNextId) Set("sem_next_id", S(e.SemNextId));
        if (e.HasShmNextId) Set("shm_next_id", S(e.ShmNextId));
        if (e.ShmRmidForced != 0) Set("shm_rmid_forced", S(e.ShmRmidForced));
        return warnings;
    }

    /// <summary>Asks the kernel to give the next object of <paramref name="kind"/> (shm, sem, msg) this id.</summary>
    public static void RequestNextId(string kind, int id) => File.WriteAllText($"{Kernel}{kind}_next_id", S((uint)id));

    /// <summary>Puts a next-id knob back to "none" after a creation that did not use it.</summary>
    public static void ClearNextId(string kind)
    {
        try { File.WriteAllText($"{Kernel}{kind}_next_id", "-1"); }
        catch (IOException) { }
    }

    private static uint? NextId(string name)
    {
        long v = long.Parse(Words(Kernel + name)[0], CultureInfo.InvariantCulture);
        return v < 0 ? null : (uint)v;
    }

    private static string S(ulong v) => v.ToString(CultureInfo.InvariantCulture);

    private static string[] Words(string path) =>
        File.ReadAllText(path).Split([' ', '\t', '\n'], StringSplitOptions.RemoveEmptyEntries);

    private static uint U32(string path) => File.Exists(path) ? uint.Parse(Words(path)[0], CultureInfo.InvariantCulture) : 0;
    private static ulong U64(string path) => ulong.Parse(Words(path)[0], CultureInfo.InvariantCulture);
}
