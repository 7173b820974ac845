using Crisp.Images.Proto;
using Google.Protobuf.Reflection;

namespace Crisp.Images;

/// <summary>
/// One kind of CRIU image: its magic name (as crit prints it), magic number, file-name pattern
/// and the protobuf message of its entries.
/// </summary>
public sealed partial class ImageKind
{
    // The descriptors are fetched when first asked for (show, decode, encode): building them is protobuf
    // reflection over every message of every .proto file, a cost a dump or restore does not need to pay.
    private readonly Func<MessageDescriptor>? _entry, _head;

    private ImageKind(string name, uint magic, string prefix, bool hasId, Func<MessageDescriptor>? entry,
        Func<MessageDescriptor>? head = null, ExtraPayload extra = ExtraPayload.None)
    {
        Name = name;
        Magic = magic;
        FilePrefix = prefix;
        HasId = hasId;
        _entry = entry;
        _head = head;
        Extra = extra;
    }

    /// <summary>CRIU's magic name, e.g. "CORE"; crit shows it as "magic".</summary>
    public string Name { get; }
    public uint Magic { get; }
    /// <summary>File name before "-ID.img" (or ".img" when <see cref="HasId"/> is false).</summary>
    public string FilePrefix { get; }
    public bool HasId { get; }
    /// <summary>Message of each entry; null for raw images.</summary>
    public MessageDescriptor? Entry => _entry?.Invoke();
    /// <summary>Message of the first entry when it differs from the rest (pagemap_head).</summary>
    public MessageDescriptor? Head => _head?.Invoke();
    public ExtraPayload Extra { get; }
    public bool IsRaw => _entry is null;
    /// <summary>inventory.img carries only its own magic; raw images none; all others IMG_COMMON first.</summary>
    public bool HasCommonMagic => !IsRaw && Magic != ImageMagic.Inventory;

    public string FileName(long? id = null)
    {
        if (HasId != id.HasValue)
            throw new ArgumentException(HasId ? $"{Name} images need an id" : $"{Name} images take no id", nameof(id));
        // CRIU names these two by a hex id (image-desc.c: tcp-stream-%x, ghost-file-%x), the rest in decimal.
        return !HasId ? $"{FilePrefix}.img" : Magic is ImageMagic.TcpStream or ImageMagic.GhostFile ? $"{FilePrefix}-{id:x}.img" : $"{FilePrefix}-{id}.img";
    }

    public override string ToString() => Name;

    public static readonly ImageKind Inventory = new("INVENTORY", ImageMagic.Inventory, "inventory", false, () => inventory_entry.Descriptor);
    public static readonly ImageKind Pstree = new("PSTREE", ImageMagic.Pstree, "pstree", false, () => pstree_entry.Descriptor);
    public static readonly ImageKind Core = new("CORE", ImageMagic.Core, "core", true, () => core_entry.Descriptor);
    public static readonly ImageKind Ids = new("IDS", ImageMagic.Ids, "ids", true, () => task_kobj_ids_entry.Descriptor);
    public static readonly ImageKind Creds = new("CREDS", ImageMagic.Creds, "creds", true, () => creds_entry.Descriptor);
    public static readonly ImageKind Fs = new("FS", ImageMagic.Fs, "fs", true, () => fs_entry.Descriptor);
    public static readonly ImageKind Mm = new("MM", ImageMagic.Mm, "mm", true, () => mm_entry.Descriptor);
    public static readonly ImageKind Vmas = new("VMAS", ImageMagic.Vmas, "vmas", true, () => vma_entry.Descriptor);
    public static readonly ImageKind Pagemap = new("PAGEMAP", ImageMagic.Pagemap, "pagemap", true, () => pagemap_entry.Descriptor, () => pagemap_head.Descriptor);
    /// <summary>pagemap-shmem-SHMID.img: a shared anonymous object's pages; vaddr = offset in the object.</summary>
    public static readonly ImageKind ShmemPagemap = new("PAGEMAP", ImageMagic.Pagemap, "pagemap-shmem", true, () => pagemap_entry.Descriptor, () => pagemap_head.Descriptor);
    public static readonly ImageKind Pages = new("PAGES", ImageMagic.Raw, "pages", true, null);
    public static readonly ImageKind Fdinfo = new("FDINFO", ImageMagic.Fdinfo, "fdinfo", true, () => fdinfo_entry.Descriptor);
    public static readonly ImageKind Files = new("FILES", ImageMagic.Files, "files", false, () => file_entry.Descriptor);
    public static readonly ImageKind RegFiles = new("REG_FILES", ImageMagic.RegFiles, "reg-files", false, () => reg_file_entry.Descriptor);
    public static readonly ImageKind Pipes = new("PIPES", ImageMagic.Pipes, "pipes", false, () => pipe_entry.Descriptor);
    public static readonly ImageKind PipesData = new("PIPES_DATA", ImageMagic.PipesData, "pipes-data", false, () => pipe_data_entry.Descriptor, null, ExtraPayload.PipeData);
    public static readonly ImageKind Fifo = new("FIFO", ImageMagic.Fifo, "fifo", false, () => fifo_entry.Descriptor);
    public static readonly ImageKind FifoData = new("FIFO_DATA", ImageMagic.FifoData, "fifo-data", false, () => pipe_data_entry.Descriptor, null, ExtraPayload.PipeData);
    public static readonly ImageKind Sigacts = new("SIGACT", ImageMagic.Sigact, "sigacts", true, () => sa_entry.Descriptor);
    public static readonly ImageKind Itimers = new("ITIMERS", ImageMagic.Itimers, "itimers", true, () => itimer_entry.Descriptor);
    public static readonly ImageKind PosixTimers = new("POSIX_TIMERS", ImageMagic.PosixTimers, "posix-timers", true, () => posix_timer_entry.Descriptor);
    public static readonly ImageKind TtyFiles = new("TTY_FILES", ImageMagic.TtyFiles, "tty", false, () => tty_file_entry.Descriptor);
    public static readonly ImageKind TtyInfo = new("TTY_INFO", ImageMagic.TtyInfo, "tty-info", false, () => tty_info_entry.Descriptor);
    public static readonly ImageKind TtyData = new("TTY_DATA", ImageMagic.TtyData, "tty-data", false, () => tty_data_entry.Descriptor);
    public static readonly ImageKind Rlimit = new("RLIMIT", ImageMagic.Rlimit, "rlimit", true, () => rlimit_entry.Descriptor);
    public static readonly ImageKind Seccomp = new("SECCOMP", ImageMagic.Seccomp, "seccomp", false, () => seccomp_entry.Descriptor);
    public static readonly ImageKind EventfdFile = new("EVENTFD_FILE", ImageMagic.EventfdFile, "eventfd", false, () => eventfd_file_entry.Descriptor);
    public static readonly ImageKind EventpollFile = new("EVENTPOLL_FILE", ImageMagic.EventpollFile, "eventpoll", false, () => eventpoll_file_entry.Descriptor);
    public static readonly ImageKind EventpollTfd = new("EVENTPOLL_TFD", ImageMagic.EventpollTfd, "eventpoll-tfd", false, () => eventpoll_tfd_entry.Descriptor);
    public static readonly ImageKind UnixSk = new("UNIXSK", ImageMagic.UnixSk, "unixsk", false, () => unix_sk_entry.Descriptor);
    public static readonly ImageKind SkQueues = new("SK_QUEUES", ImageMagic.SkQueues, "sk-queues", false, () => sk_packet_entry.Descriptor, null, ExtraPayload.SkQueue);
    /// <summary>tcp-stream-INO.img: CRIU names it by the socket's inode in hex (see TcpStreamImage).</summary>
    public static readonly ImageKind TcpStream = new("TCP_STREAM", ImageMagic.TcpStream, "tcp-stream", true, () => tcp_stream_entry.Descriptor, null, ExtraPayload.TcpQueues);
    public static readonly ImageKind MemfdInode = new("MEMFD_INODE", ImageMagic.MemfdInode, "memfd", false, () => memfd_inode_entry.Descriptor);
    public static readonly ImageKind Signalfd = new("SIGNALFD", ImageMagic.Signalfd, "signalfd", false, () => signalfd_entry.Descriptor);
    public static readonly ImageKind Timerfd = new("TIMERFD", ImageMagic.Timerfd, "timerfd", false, () => timerfd_entry.Descriptor);
    public static readonly ImageKind NsFiles = new("NS_FILES", ImageMagic.NsFiles, "ns-files", false, () => ns_file_entry.Descriptor);
    public static readonly ImageKind RemapFpath = new("REMAP_FPATH", ImageMagic.RemapFpath, "remap-fpath", false, () => remap_file_path_entry.Descriptor);
    public static readonly ImageKind GhostFile = new("GHOST_FILE", ImageMagic.GhostFile, "ghost-file", true, () => ghost_file_entry.Descriptor, null, ExtraPayload.GhostData);
    public static readonly ImageKind FileLocks = new("FILE_LOCKS", ImageMagic.FileLocks, "file-locks", false, () => file_lock_entry.Descriptor);
    /// <summary>ipcns-*-NSID.img: an IPC namespace's sysctls and SysV objects (NSID = ids' ipc_ns_id).</summary>
    public static readonly ImageKind IpcVar = new("IPC_VAR", ImageMagic.IpcVar, "ipcns-var", true, () => ipc_var_entry.Descriptor);
    public static readonly ImageKind IpcnsShm = new("IPCNS_SHM", ImageMagic.IpcnsShm, "ipcns-shm", true, () => ipc_shm_entry.Descriptor, null, ExtraPayload.IpcShmData);
    public static readonly ImageKind IpcnsMsg = new("IPCNS_MSG", ImageMagic.IpcnsMsg, "ipcns-msg", true, () => ipc_msg_entry.Descriptor, null, ExtraPayload.IpcMsgQueue);
    public static readonly ImageKind IpcnsSem = new("IPCNS_SEM", ImageMagic.IpcnsSem, "ipcns-sem", true, () => ipc_sem_entry.Descriptor, null, ExtraPayload.IpcSemValues);
    /// <summary>utsns-NSID.img: hostname and domainname of a UTS namespace the tree has of its own.</summary>
    public static readonly ImageKind Utsns = new("UTSNS", ImageMagic.Utsns, "utsns", true, () => utsns_entry.Descriptor);
    /// <summary>timens-NSID.img: the clocks a time namespace of the tree's own showed at dump.</summary>
    public static readonly ImageKind Timens = new("TIMENS", ImageMagic.Timens, "timens", true, () => timens_entry.Descriptor);
    /// <summary>netdev-NSID.img: the links of a network namespace of the tree's own.</summary>
    public static readonly ImageKind Netdev = new("NETDEV", ImageMagic.Netdev, "netdev", true, () => net_device_entry.Descriptor);
    /// <summary>netns-NSID.img: a network namespace's sysctls (CRIU restores a namespace only with it).</summary>
    public static readonly ImageKind Netns = new("NETNS", ImageMagic.Netns, "netns", true, () => netns_entry.Descriptor);
    /// <summary>ifaddr-NSID.img, route-NSID.img, route6-NSID.img: raw, as `ip addr save` / `ip route save` write them
    /// (a 32-bit magic, then the kernel's RTM_NEWADDR / RTM_NEWROUTE messages); crit does not read them.</summary>
    public static readonly ImageKind Ifaddr = new("IFADDR", ImageMagic.Raw, "ifaddr", true, null);
    public static readonly ImageKind Route = new("ROUTE", ImageMagic.Raw, "route", true, null);
    public static readonly ImageKind Route6 = new("ROUTE6", ImageMagic.Raw, "route6", true, null);
    /// <summary>nftables-NSID.img: raw, the text of `nft list ruleset` in the namespace (CRIU's libnftables dump).</summary>
    public static readonly ImageKind Nftables = new("NFTABLES", ImageMagic.Raw, "nftables", true, null);
    /// <summary>cgroup.img: the tree's cgroup sets, hierarchies and their dirs (--manage-cgroups).</summary>
    public static readonly ImageKind Cgroup = new("CGROUP", ImageMagic.Cgroup, "cgroup", false, () => cgroup_entry.Descriptor);
    /// <summary>mountpoints-NSID.img: every mount of a mount namespace the tree has of its own.</summary>
    public static readonly ImageKind Mnts = new("MNTS", ImageMagic.Mnts, "mountpoints", true, () => mnt_entry.Descriptor);
    /// <summary>stats-dump / stats-restore (service images named without ".img"; not in <see cref="All"/>).</summary>
    public static readonly ImageKind Stats = new("STATS", ImageMagic.Stats, "stats", false, () => stats_entry.Descriptor);

    public static IReadOnlyList<ImageKind> All { get; } =
    [
        Inventory, Pstree, Core, Ids, Creds, Fs, Mm, Vmas, Pagemap, ShmemPagemap, Pages, Fdinfo, Files, RegFiles,
        Pipes, PipesData, Fifo, FifoData, Sigacts, Itimers, PosixTimers, TtyFiles, TtyInfo, TtyData,
        Rlimit, Seccomp, EventfdFile, EventpollFile, EventpollTfd, UnixSk, SkQueues, TcpStream, MemfdInode, Signalfd, Timerfd, NsFiles,
        RemapFpath, GhostFile, FileLocks, IpcVar, IpcnsShm, IpcnsMsg, IpcnsSem, Utsns, Mnts,
        Timens, Netdev, Netns, Ifaddr, Route, Route6, Nftables, Cgroup,
    ];

    /// <summary>The kind a CRIU image-file name denotes, e.g. "core-42.img" → (Core, 42); null when unknown.</summary>
    public static ImageFile? FromFileName(string fileName)
    {
        if (SplitFileName(System.IO.Path.GetFileName(fileName)) is not var (prefix, idText))
            return null;
        if (prefix == TcpStream.FilePrefix && idText is not null)   // named by inode in hex
            return new ImageFile(TcpStream, long.Parse(idText, System.Globalization.NumberStyles.HexNumber, System.Globalization.CultureInfo.InvariantCulture));
        if (idText is not null && idText.Any(char.IsLetter))
            (prefix, idText) = ($"{prefix}-{idText}", null);
        long? id = idText is not null ? long.Parse(idText, System.Globalization.CultureInfo.InvariantCulture) : null;
        string whole = id.HasValue ? $"{prefix}-{id}" : prefix;
        foreach (var k in All)
        {
            if (k.HasId && id.HasValue && k.FilePrefix == prefix)
                return new ImageFile(k, id);
            if (!k.HasId && k.FilePrefix == whole)
                return new ImageFile(k, null);
        }
        return null;
    }

    /// <summary>PREFIX[-ID].img, PREFIX of [a-z] then [a-z-], ID of 1-18 hex digits after the last '-' (the shortest
    /// prefix that leaves a valid ID, as CRIU names them). By hand, not a regex: the first regex of a run cost
    /// ~1 ms of start-up in every restore.</summary>
    internal static (string Prefix, string? Id)? SplitFileName(string name)
    {
        if (!name.EndsWith(".img", StringComparison.Ordinal))
            return null;
        string stem = name[..^4];
        int dash = stem.LastIndexOf('-');
        if (dash > 0 && stem.Length - dash - 1 is >= 1 and <= 18 && IsPrefix(stem.AsSpan(0, dash)) && IsHex(stem.AsSpan(dash + 1)))
            return (stem[..dash], stem[(dash + 1)..]);
        return IsPrefix(stem) ? (stem, null) : null;

        static bool IsPrefix(ReadOnlySpan<char> s) => s.Length > 0 && char.IsAsciiLetterLower(s[0]) && !s.ContainsAnyExcept(PrefixChars);
        static bool IsHex(ReadOnlySpan<char> s) => !s.ContainsAnyExcept(HexChars);
    }

    private static readonly System.Buffers.SearchValues<char> PrefixChars = System.Buffers.SearchValues.Create("abcdefghijklmnopqrstuvwxyz-");
    private static readonly System.Buffers.SearchValues<char> HexChars = System.Buffers.SearchValues.Create("0123456789abcdef");

    public static ImageKind? FromMagic(uint magic) => All.FirstOrDefault(k => !k.IsRaw && k.Magic == magic);

}
