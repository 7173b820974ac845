using System.Text;
using System.Text.RegularExpressions;
using Crisp.Linux;
using Crisp.Linux.Proc;

namespace Crisp.Tests.Support;

/// <summary>Reads one process (and its threads) into a snapshot's facts. Fds are read first for every process
/// (<see cref="ReadFds"/>), so anonymous objects get their labels before maps and epoll lines refer to them.
/// A file that cannot be read is recorded as "(unreadable: …)": its going missing is a difference too.</summary>
internal sealed partial class ProcessStateReader(int pid, InodeLabels labels, IDictionary<StateKey, string> facts)
{
    private const long SysIoprioGet = 252, IoprioWhoProcess = 1;   // x86-64; crisp's Sysno has no ioprio yet

    /// <summary>proc(5) names of /proc/PID/stat fields 1..52.</summary>
    private static readonly string[] StatNames =
    [
        "", "pid", "comm", "state", "ppid", "pgrp", "session", "tty_nr", "tpgid", "flags", "minflt", "cminflt",
        "majflt", "cmajflt", "utime", "stime", "cutime", "cstime", "priority", "nice", "num_threads", "itrealvalue",
        "starttime", "vsize", "rss", "rsslim", "startcode", "endcode", "startstack", "kstkesp", "kstkeip", "signal",
        "blocked", "sigignore", "sigcatch", "wchan", "nswap", "cnswap", "exit_signal", "processor", "rt_priority",
        "policy", "delayacct_blkio_ticks", "guest_time", "cguest_time", "start_data", "end_data", "start_brk",
        "arg_start", "arg_end", "env_start", "env_end", "exit_code",
    ];

    /// <summary>stat fields that belong to a thread rather than to its process (the rest a thread shares with
    /// its leader, recorded once there).</summary>
    private static readonly HashSet<string> ThreadStatFields = ["state", "flags", "priority", "nice", "rt_priority", "policy", "processor"];

    /// <summary>status fields that belong to a thread (credentials, signal mask, seccomp, affinity, …).</summary>
    private static readonly HashSet<string> ThreadStatusFields =
    [
        "Name", "State", "Pid", "Uid", "Gid", "Groups", "NSpid", "Kthread", "SigPnd", "SigBlk", "CapInh", "CapPrm",
        "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp", "Seccomp_filters", "Speculation_Store_Bypass",
        "SpeculationIndirectBranch", "Cpus_allowed", "Cpus_allowed_list", "Mems_allowed", "Mems_allowed_list",
        "x86_Thread_features", "x86_Thread_features_locked",
    ];

    private readonly string _task = pid.ToString();

    private readonly List<(FdLink Link, FdInfo? Info)> _fds = [];

    /// <summary>First pass: every fd's link and fdinfo, labelling the anonymous objects they hold.</summary>
    public void ReadFds()
    {
        try
        {
            foreach (var fd in ProcFds.Read(pid))
                _fds.Add((fd, TryFdInfo(fd.Fd)));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Put(_task, "fd", "", Unreadable(e));
        }
        foreach (var (fd, info) in _fds)
        {
            labels.Target(fd.Target, out _);
            // A memfd, a deleted file or an anon_inode object: its inode number is new after a restore.
            if (info is not null && (fd.Target.EndsWith(" (deleted)", StringComparison.Ordinal)
                || fd.Target.StartsWith("/memfd:", StringComparison.Ordinal) || fd.Target.StartsWith("anon_inode:", StringComparison.Ordinal)))
                labels.Label(info.Ino);
        }
    }

    /// <summary>Second pass, once every process's fds are labelled (an epoll may watch an fd read later):
    /// fd/N's target and fdinfo lines. Lines with the same key (epoll's tfd, inotify marks, locks) are sorted:
    /// the kernel lists them in the order of its object addresses, which a restore does not keep.</summary>
    public void PutFds()
    {
        foreach (var (fd, info) in _fds)
        {
            string file = $"fd/{fd.Fd}";
            Put(_task, file, "target", labels.Target(fd.Target, out _));
            if (info is null)
                continue;
            foreach (var group in info.Entries.GroupBy(e => e.Key))
                Put(_task, file, group.Key, string.Join(" | ", group.Select(e => FdInfoValue(group.Key, e.Value)).Order(StringComparer.Ordinal)));
        }
    }

    private FdInfo? TryFdInfo(int fd)
    {
        try
        {
            return FdInfo.Read(pid, fd);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;   // closed while we looked
        }
    }

    private string FdInfoValue(string key, string value)
    {
        value = Spaces().Replace(value, " ");
        if (key == "ino" && ulong.TryParse(value, out var ino))
            return labels.LabelIfKnown(ino);
        // epoll's tfd lines and inotify/fanotify marks name their objects by hex inode ("ino:1b").
        return HexInode().Replace(value, m => "ino:" + labels.LabelIfKnown(Convert.ToUInt64(m.Groups[1].Value, 16)));
    }

    /// <summary>Everything else: status, stat, memory, limits, timers, ids, links; then each other thread.</summary>
    public void ReadRest()
    {
        Status(_task, "status", Text("status"), _ => true);
        Stat(_task, "stat", Text("stat"), _ => true);
        Maps();
        foreach (var line in Lines("limits"))
            if (!line.StartsWith("Limit ", StringComparison.Ordinal) && line.Length > 25)
                Put(_task, "limits", line[..25].Trim(), Spaces().Replace(line[25..].Trim(), " "));
        Timers();
        Sched(_task, "sched");
        foreach (var name in new[] { "personality", "oom_score_adj", "loginuid", "sessionid", "comm", "coredump_filter", "timerslack_ns", "attr/current" })
            Put(_task, name, "", Text(name).Trim());
        Put(_task, "cmdline", "", Text("cmdline").Replace("\0", "\\0"));
        Put(_task, "environ", "", Text("environ").Replace("\0", "\\0"));
        foreach (var name in new[] { "cwd", "root", "exe" })
            Put(_task, name, "", Link(Procfs.Host.Path(pid, name)));
        foreach (var ns in Entries("ns"))
            Put(_task, "ns", Path.GetFileName(ns), Link(ns));
        foreach (var line in Lines("cgroup"))
            Put(_task, "cgroup", line[..line.IndexOf(':')], line[(line.IndexOf(':') + 1)..]);
        foreach (var line in Lines("mountinfo"))
            Put(_task, "mountinfo", line[..line.IndexOf(' ')], line[(line.IndexOf(' ') + 1)..]);
        Auxv();
        Ioprio(_task, pid);
        foreach (int tid in Threads())
            if (tid != pid)
                Thread(tid);
    }

    /// <summary>A thread other than the leader: only what is the thread's own (the leader's is in the process's files).</summary>
    private void Thread(int tid)
    {
        string task = $"{pid}/{tid}";
        Status(task, "task status", Text($"task/{tid}/status"), ThreadStatusFields.Contains);
        Stat(task, "task stat", Text($"task/{tid}/stat"), ThreadStatFields.Contains);
        Put(task, "task comm", "", Text($"task/{tid}/comm").Trim());
        Sched(task, $"task/{tid}/sched");
        Ioprio(task, tid);
    }

    private void Status(string task, string file, string text, Func<string, bool> wanted)
    {
        bool zombie = text.Contains("\nState:\tZ", StringComparison.Ordinal);
        foreach (var line in ProcFiles.Lines(text))
        {
            if (!ProcFiles.SplitKeyValue(line, out var key, out var value) || !wanted(key))
                continue;
            // A zombie runs no handler and takes no signal again: crisp makes its zombies without the signal
            // state they died with (handlers, mask, the pending signal that killed them).
            if (zombie && key is "SigPnd" or "ShdPnd" or "SigBlk" or "SigIgn" or "SigCgt")
                key += " of zombie";
            Put(task, file, key, key == "State" ? FoldState(value) : Spaces().Replace(value, " "));
        }
    }

    private void Stat(string task, string file, string text, Func<string, bool> wanted)
    {
        if (text.StartsWith('(') && text.EndsWith(')'))
        {
            Put(task, file, "", text);   // unreadable
            return;
        }
        var stat = ProcStat.Parse(text);
        for (int n = 2; n <= Math.Min(stat.FieldCount, StatNames.Length - 1); n++)
        {
            if (!wanted(StatNames[n]))
                continue;
            if (n == 9)
            {
                // PF_* flags, in hex; the bits that record the task's history rather than its state apart.
                uint flags = (uint)stat.ULong(9);
                Put(task, file, "flags", $"0x{flags & ~HistoryFlags:x}");
                Put(task, file, "flags history", $"0x{flags & HistoryFlags:x}");
            }
            else
                Put(task, file, StatNames[n], n == 3 ? FoldState(stat.Raw(n)) : stat.Raw(n));
        }
    }

    /// <summary>PF_FORKNOEXEC (0x40: forked and not exec'd since) and PF_SUPERPRIV (0x100: has used a capability).</summary>
    private const uint HistoryFlags = 0x40 | 0x100;

    /// <summary>R, S and D are one state here: whether a task is on a CPU or waiting the moment /proc is read is
    /// chance, not something a restore keeps. Stopped, traced and zombie tasks stay what they are.</summary>
    private static string FoldState(string state) => state.Length > 0 && state[0] is 'R' or 'S' or 'D' ? "R/S/D (running or sleeping)" : state;

    /// <summary>Every mapping by its address range: protection, offset, device, inode (labelled when anonymous),
    /// path, smaps VmFlags (sorted), protection key and THP eligibility.</summary>
    private void Maps()
    {
        List<SmapsEntry> smaps;
        try
        {
            smaps = ProcSmaps.Read(pid);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Put(_task, "smaps", "", Unreadable(e));
            return;
        }
        var mappings = new List<(ulong Start, ulong End, string Value, string[] Extra, bool Anonymous)>();
        foreach (var s in smaps)
        {
            var v = s.Vma;
            bool anonymousObject = v.Deleted || v.IsMemfd || v.IsSysvShm || v.IsSocket || v.Path.StartsWith("[anon_shmem", StringComparison.Ordinal);
            string inode = anonymousObject && v.Inode != 0 ? labels.Label(v.Inode) : v.Inode.ToString();
            string path = v.IsSocket ? labels.Target(v.Path, out _) : v.Path;   // a packet socket's rings: the label its fd has
            var sb = new StringBuilder();
            sb.Append($"{(v.CanRead ? 'r' : '-')}{(v.CanWrite ? 'w' : '-')}{(v.CanExec ? 'x' : '-')}{(v.Shared ? 's' : 'p')}");
            sb.Append($" {v.Offset:x} {v.DevMajor:x2}:{v.DevMinor:x2} {inode} {path}{(v.Deleted ? " (deleted)" : "")}");
            sb.Append($" [{string.Join(' ', s.VmFlags.Where(f => f != "ac" && !AdviceFlags.ContainsKey(f)).Order(StringComparer.Ordinal))}]");
            if (s.Fields.TryGetValue("ProtectionKey", out var pkey))
                sb.Append($" pkey {pkey}");
            if (s.Fields.TryGetValue("THPeligible", out var thp))
                sb.Append($" THPeligible {thp}");
            var extra = AdviceFlags.Where(a => s.VmFlags.Contains(a.Key)).Select(a => a.Key).ToList();
            // VM_ACCOUNT (commit charge) follows from private+writable, except on a mapping writable once and
            // mprotect'ed since (glibc's stack guards): recorded apart so the allow-list can say so.
            if (s.VmFlags.Contains("ac") != (v.CanWrite && !v.Shared))
                extra.Add(s.VmFlags.Contains("ac") ? "VM_ACCOUNT ac" : "VM_ACCOUNT -");
            (ulong Start, ulong End, string Value, string[] Extra, bool Anonymous) m =
                (v.Start, v.End, sb.ToString(), extra.ToArray(), v.Kind == VmaKind.Anonymous && !v.Shared);
            // Adjacent private anonymous mappings alike in everything are one to a program; the kernel merges them
            // or not depending on their anon_vma history, which a restore does not repeat.
            if (mappings.Count > 0 && m.Anonymous && mappings[^1].Anonymous && mappings[^1].End == m.Start
                && mappings[^1].Value == m.Value && mappings[^1].Extra.SequenceEqual(m.Extra))
                mappings[^1] = mappings[^1] with { End = m.End };
            else
                mappings.Add(m);
        }
        foreach (var (start, end, value, extra, _) in mappings)
        {
            Put(_task, "maps", $"{start:x}-{end:x}", value);
            foreach (var flag in extra)
                Put(_task, "maps", flag.StartsWith("VM_ACCOUNT") ? $"{start:x}-{end:x} VM_ACCOUNT" : $"{start:x}-{end:x} {flag}",
                    flag.StartsWith("VM_ACCOUNT") ? flag[11..] : AdviceFlags[flag]);
        }
    }

    /// <summary>VmFlags a program sets on a mapping after mmap (madvise, mlock) or with a special mmap flag: each is
    /// a fact of its own ("RANGE dc"), so the allow-list can name one that is not restored yet.</summary>
    private static readonly Dictionary<string, string> AdviceFlags = new()
    {
        ["dc"] = "MADV_DONTFORK", ["wf"] = "MADV_WIPEONFORK", ["dd"] = "MADV_DONTDUMP", ["hg"] = "MADV_HUGEPAGE",
        ["nh"] = "MADV_NOHUGEPAGE", ["mg"] = "MADV_MERGEABLE", ["lo"] = "mlock", ["gd"] = "MAP_GROWSDOWN",
    };

    private void Timers()
    {
        string text = Text("timers");
        if (text.StartsWith("(unreadable", StringComparison.Ordinal))
        {
            Put(_task, "timers", "", text);
            return;
        }
        foreach (var t in ProcTimers.Parse(text))
            Put(_task, "timers", $"ID {t.Id}", $"signal {t.Signal}/{t.SigevValue:x} notify {t.NotifyMode}/{t.NotifyTarget}.{t.NotifyTid} ClockID {t.ClockId}");
    }

    /// <summary>The policy and prio lines of /proc/PID/sched (the rest of it is run-time accounting).</summary>
    private void Sched(string task, string name)
    {
        foreach (var line in Lines(name))
            if (ProcFiles.SplitKeyValue(line, out var key, out var value) && key is "policy" or "prio")
                Put(task, "sched", key, value);
    }

    /// <summary>The auxiliary vector the kernel gave the program (crisp must put back the same one).</summary>
    private void Auxv()
    {
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(Procfs.Host.Path(pid, "auxv"));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Put(_task, "auxv", "", Unreadable(e));
            return;
        }
        for (int i = 0; i + 16 <= bytes.Length; i += 16)
        {
            ulong type = BitConverter.ToUInt64(bytes, i), value = BitConverter.ToUInt64(bytes, i + 8);
            if (type != 0)
                Put(_task, "auxv", $"AT_{type}", $"0x{value:x}");
        }
    }

    /// <summary>ioprio_get(IOPRIO_WHO_PROCESS, tid): /proc does not show the I/O priority.</summary>
    private void Ioprio(string task, int tid)
    {
        long v = RawSyscall.TryCall(SysIoprioGet, IoprioWhoProcess, tid);
        Put(task, "ioprio_get", "", v < 0 ? $"(errno {-v})" : $"class {v >> 13} data {v & 0x1fff}");
    }

    private int[] Threads()
    {
        try
        {
            return ProcTasks.Threads(pid);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return [];
        }
    }

    private void Put(string task, string file, string field, string value) => facts[new StateKey(task, file, field)] = value;

    private string Text(string name)
    {
        try
        {
            return Procfs.Host.ReadText(pid, name);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return Unreadable(e);
        }
    }

    private IEnumerable<string> Lines(string name)
    {
        string text = Text(name);
        return text.StartsWith("(unreadable", StringComparison.Ordinal) ? [] : ProcFiles.Lines(text);
    }

    private IEnumerable<string> Entries(string name)
    {
        try
        {
            return Directory.GetFileSystemEntries(Procfs.Host.Path(pid, name)).Order(StringComparer.Ordinal).ToList();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return [];
        }
    }

    private static string Link(string path)
    {
        try
        {
            return new FileInfo(path).LinkTarget ?? "(not a link)";
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return Unreadable(e);
        }
    }

    private static string Unreadable(Exception e) => $"(unreadable: {e.GetType().Name})";

    [GeneratedRegex(@"\s+")]
    private static partial Regex Spaces();

    [GeneratedRegex(@"\bino:([0-9a-f]+)")]
    private static partial Regex HexInode();
}
