using Crisp.Cli.CommandLine;
using Crisp.Rpc.Proto;

namespace Crisp.Cli.Rpc;

/// <summary>criu_opts as the command-line words of the same options, so an RPC dump or restore runs exactly what the
/// CLI runs: every option the CLI carries out is honoured, every one it refuses is refused here too, by the field's
/// name and the option's. The directories, the log file and notify_scripts are the service's own (<see cref="RpcSession"/>).</summary>
public static class CriuOptsWords
{
    public sealed record Item(string Field, string[] Words);

    /// <summary>The words for <paramref name="o"/>, each with the field it came from. A field that is set but has no
    /// option crisp could carry out, or whose option crisp refuses, throws <see cref="RpcRequestException"/>.</summary>
    public static List<Item> For(criu_opts o, criu_req_type type, bool standalone)
    {
        var items = new List<Item>();
        void Add(string field, params string[] words) => items.Add(new Item(field, words));
        void Flag(bool set, string field, string option)
        {
            if (set)
                Add(field, "--" + option);
        }

        if (type is criu_req_type.Dump or criu_req_type.PreDump or criu_req_type.SinglePreDump)
        {
            if (!o.HasPid)
                throw Refuse("pid", "is not set: crisp does not dump the calling process itself (give the pid of the tree to dump)");
            Add("pid", $"--tree={o.Pid}");
        }
        Flag(o.LeaveRunning, "leave_running", "leave-running");
        Flag(o.LeaveStopped, "leave_stopped", "leave-stopped");
        Flag(o.ExtUnixSk, "ext_unix_sk", "ext-unix-sk");
        if (o.UnixSkIno.Count > 0)
            throw Refuse("unix_sk_ino", "is not supported by crisp: --ext-unix-sk takes no inode list (pass ext_unix_sk alone)");
        Flag(o.TcpEstablished, "tcp_established", "tcp-established");
        Flag(o.EvasiveDevices, "evasive_devices", "evasive-devices");
        Flag(o.ShellJob, "shell_job", "shell-job");
        Flag(o.FileLocks, "file_locks", "file-locks");
        if (o.Ps is not null && o.LazyPages)
            Add("ps", $"--port={o.Ps.Port}");   // as CRIU: with lazy_pages, ps is where the dump serves them
        else if (o.Ps is not null)
            Add("ps", "--page-server");
        if (o.HasRoot)
            Add("root", $"--root={o.Root}");
        if (o.HasParentImg)
            Add("parent_img", $"--prev-images-dir={o.ParentImg}");
        Flag(o.TrackMem, "track_mem", "track-mem");
        Flag(o.AutoDedup, "auto_dedup", "auto-dedup");
        Flag(o.LinkRemap, "link_remap", "link-remap");
        foreach (var v in o.Veths)
            Add("veths", $"--veth-pair={v.IfIn}={v.IfOut}");
        if (o.HasCpuCap && o.CpuCap != uint.MaxValue)
            Add("cpu_cap", $"--cpu-cap={CpuCapNames(o.CpuCap)}");
        Flag(o.ForceIrmap, "force_irmap", "force-irmap");
        if (o.ExecCmd.Count > 0)
            Add("exec_cmd", "--exec-cmd");
        foreach (var m in o.ExtMnt)
            Add("ext_mnt", $"--ext-mount-map={m.Key}:{m.Val}");
        if (o.HasManageCgroupsMode)
            Add("manage_cgroups_mode", $"--manage-cgroups={CgroupMode(o.ManageCgroupsMode)}");
        else if (o.HasManageCgroups)
            Add("manage_cgroups", o.ManageCgroups ? "--manage-cgroups=soft" : "--manage-cgroups=ignore");
        foreach (var r in o.CgRoot)
            Add("cg_root", $"--cgroup-root={(r.HasCtrl ? r.Ctrl + ":" : "")}{r.Path}");
        if (o.RstSibling)
        {
            if (standalone)
                throw Refuse("rst_sibling", "is not allowed in the standalone service (only `swrk`: the restored root becomes the caller's child)");
            if (type == criu_req_type.Restore)
                Add("rst_sibling", "--restore-sibling");
        }
        if (o.InheritFd.Count > 0 && standalone)
            throw Refuse("inherit_fd", "is not allowed in the standalone service (only `swrk`: the descriptors are crisp's own)");
        foreach (var f in o.InheritFd)
            Add("inherit_fd", $"--inherit-fd=fd[{f.Fd}]:{f.Key}");
        if (o.AutoExtMnt)
            Add("auto_ext_mnt", "--ext-mount-map=auto");
        Flag(o.ExtSharing, "ext_sharing", "enable-external-sharing");
        Flag(o.ExtMasters, "ext_masters", "enable-external-masters");
        foreach (var m in o.SkipMnt)
            Add("skip_mnt", $"--skip-mnt={m}");
        foreach (var f in o.EnableFs)
            Add("enable_fs", $"--enable-fs={f}");
        if (o.HasGhostLimit)
            Add("ghost_limit", $"--ghost-limit={o.GhostLimit}");
        foreach (var p in o.IrmapScanPaths)
            Add("irmap_scan_paths", $"--irmap-scan-path={p}");
        foreach (var e in o.External)
            Add("external", $"--external={e}");
        if (o.EmptyNs != 0)
        {
            const uint CLONE_NEWNET = 0x40000000;
            if ((o.EmptyNs & ~CLONE_NEWNET) != 0)
                throw Refuse("empty_ns", $"0x{o.EmptyNs:x} asks for more than CLONE_NEWNET (CRIU takes only the network namespace)");
            Add("empty_ns", "--empty-ns=net");
        }
        foreach (var j in o.JoinNs)
            Add("join_ns", $"--join-ns={j.Ns}:{j.NsFile}{(j.HasExtraOpt ? "," + j.ExtraOpt : "")}");
        if (o.HasCgroupProps)
            Add("cgroup_props", $"--cgroup-props={o.CgroupProps}");
        if (o.HasCgroupPropsFile)
            Add("cgroup_props_file", $"--cgroup-props-file={o.CgroupPropsFile}");
        foreach (var c in o.CgroupDumpController)
            Add("cgroup_dump_controller", $"--cgroup-dump-controller={c}");
        if (o.HasFreezeCgroup)
            Add("freeze_cgroup", $"--freeze-cgroup={o.FreezeCgroup}");
        if (o.HasTimeout)
            Add("timeout", $"--timeout={o.Timeout}");
        Flag(o.TcpSkipInFlight, "tcp_skip_in_flight", "skip-in-flight");
        Flag(o.WeakSysctls, "weak_sysctls", "weak-sysctls");
        Flag(o.LazyPages, "lazy_pages", "lazy-pages");
        Flag(o.TcpClose, "tcp_close", "tcp-close");
        if (o.HasLsmProfile)
            Add("lsm_profile", $"--lsm-profile={o.LsmProfile}");
        if (o.HasTlsCacert)
            Add("tls_cacert", $"--tls-cacert={o.TlsCacert}");
        if (o.HasTlsCacrl)
            Add("tls_cacrl", $"--tls-cacrl={o.TlsCacrl}");
        if (o.HasTlsCert)
            Add("tls_cert", $"--tls-cert={o.TlsCert}");
        if (o.HasTlsKey)
            Add("tls_key", $"--tls-key={o.TlsKey}");
        Flag(o.Tls, "tls", "tls");
        Flag(o.TlsNoCnVerify, "tls_no_cn_verify", "tls-no-cn-verify");
        if (o.HasCgroupYard)
            Add("cgroup_yard", $"--cgroup-yard={o.CgroupYard}");
        if (o.HasPreDumpMode)
            Add("pre_dump_mode", $"--pre-dump-mode={(o.PreDumpMode == criu_pre_dump_mode.VmRead ? "read" : "splice")}");
        if (o.HasPidfdStoreSk)
            throw Refuse("pidfd_store_sk", "is not supported by crisp yet (it serves pre-dump, which crisp does not have)");
        if (o.HasLsmMountContext)
            Add("lsm_mount_context", $"--lsm-mount-context={o.LsmMountContext}");
        if (o.HasNetworkLock)
            Add("network_lock", $"--network-lock={o.NetworkLock switch { criu_network_lock_method.Nftables => "nftables", criu_network_lock_method.Skip => "skip", _ => "iptables" }}");
        Flag(o.MntnsCompatMode, "mntns_compat_mode", "mntns-compat-mode");
        Flag(o.SkipFileRwxCheck, "skip_file_rwx_check", "skip-file-rwx-check");
        Flag(o.Unprivileged, "unprivileged", "unprivileged");
        Flag(o.DisplayStats, "display_stats", "display-stats");
        if (o.LogToStderr)
            throw Refuse("log_to_stderr", "is refused: in swrk/service mode crisp never writes to its stdin/stdout/stderr (the container's); use log_file");
        Flag(o.OrphanPtsMaster, "orphan_pts_master", "orphan-pts-master");
        foreach (var item in items)
            CheckSupported(item);
        return items;
    }

    /// <summary>Refuses an item whose option crisp's command line refuses, naming both.</summary>
    private static void CheckSupported(Item item)
    {
        string word = item.Words[0];
        string name = word[2..].Split('=')[0];
        var spec = CriuOptions.All.FirstOrDefault(s => s.Long == name)
            ?? throw new InvalidOperationException($"no CLI option --{name} for criu_opts.{item.Field}");
        if (!spec.Supported)
            throw Refuse(item.Field, $"(--{name}) is not supported by crisp yet");
    }

    private static RpcRequestException Refuse(string field, string why) => new($"criu_opts.{field} {why}");

    /// <summary>CRIU's --manage-cgroups mode names (config.c) for criu_cg_mode.</summary>
    private static string CgroupMode(criu_cg_mode mode) => mode switch
    {
        criu_cg_mode.Ignore => "ignore",
        criu_cg_mode.CgNone => "none",
        criu_cg_mode.Props => "props",
        criu_cg_mode.Soft or criu_cg_mode.Default => "soft",
        criu_cg_mode.Full => "full",
        criu_cg_mode.Strict => "strict",
        _ => throw Refuse("manage_cgroups_mode", $"{(int)mode} is not a cgroup mode CRIU knows"),
    };

    /// <summary>CRIU's CPU_CAP_* bits (cr_options.h) as --cpu-cap names.</summary>
    private static string CpuCapNames(uint bits)
    {
        var names = new List<string>();
        if ((bits & 1) != 0) names.Add("fpu");
        if ((bits & 2) != 0) names.Add("cpu");
        if ((bits & 4) != 0) names.Add("ins");
        return names.Count == 0 ? "none" : string.Join(',', names);
    }
}
