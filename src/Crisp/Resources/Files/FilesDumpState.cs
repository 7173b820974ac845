using Crisp.Resources.Files.Fifo;
using Crisp.Resources.Files.Ghost;
using Crisp.Resources.Files.Locks;
using Crisp.Resources.Files.Memfd;
using Crisp.Resources.Files.Pipes;
using Crisp.Resources.Files.Sockets;
using Crisp.Resources.Files.Sockets.Inet;
using Crisp.Resources.Files.Sockets.Unix;
using Crisp.Resources.Files.Tty;

namespace Crisp.Resources.Files;

/// <summary>Dump-wide state of open files: files.img's table and what each fd kind gathers for the images it
/// writes once every task is dumped. Memfd inodes add their mapping entries to the same table.</summary>
public sealed class FilesDumpState : IDisposable
{
    public FilesDumpState()
    {
        Memfds = new MemfdInodesDump(Table);
    }

    public FileTable Table { get; } = new();
    public PipeDataDump PipeData { get; } = new();
    public FifoDataDump FifoData { get; } = new();
    public GhostDump Ghosts { get; } = new();
    public MemfdInodesDump Memfds { get; }
    public TtyDump Ttys { get; } = new();
    public SkQueuesDump SkQueues { get; } = new();
    public UnixPeers UnixPeers { get; } = new();
    public ExternalPeersDump ExternalPeers { get; } = new();
    public TcpRepairedDump TcpRepaired { get; } = new();
    public LocksSeen Locks { get; } = new();
    /// <summary>Which mounts a tree's files may lie on (a tree with a mount namespace of its own).</summary>
    public Mounts.TreeMounts TreeMounts { get; } = new();
    public Ghost.GhostReferences GhostReferences { get; } = new();
    public Sockets.Unix.PendingListeners PendingListeners { get; } = new();
    /// <summary>Files queued in unix sockets (SCM_RIGHTS), held until the dump ends.</summary>
    public Sockets.InFlightDump InFlight { get; } = new();

    public void Dispose() => InFlight.Dispose();
}

/// <summary>Restore-wide state of open files: crisp's fd of every description, the objects several
/// descriptions share (pipes, FIFOs, ghosts, ptys, unix socket pairs, memfd inodes) and what the fd kinds' steps
/// after install read. The restore's context disposes it: every fd crisp made for the tree is closed.</summary>
public sealed class FilesRestoreState : IDisposable
{
    public OpenDescriptions Open { get; } = new();
    public PipeSet Pipes { get; } = new();
    public FifoSet Fifos { get; } = new();
    public GhostRestore Ghosts { get; } = new();
    public PtySet Ptys { get; } = new();
    public UnixSocketSet UnixSockets { get; } = new();
    public TcpRestoreState Tcp { get; } = new();
    public Epoll.EpollItems Epolls { get; } = new();
    public LocksByPid Locks { get; } = new();
    public MemfdInodes Memfds { get; } = new();
    public Pidfds.DeadPids DeadPids { get; } = new();
    /// <summary>F_SETOWN owners, set once the tree exists.</summary>
    public PendingOwners Owners { get; } = new();

    public void Dispose()
    {
        Owners.Dispose();
        foreach (var fd in Open.ById.Values)
            fd.Dispose();
        Open.ById.Clear();
        Pipes.Dispose();
        Fifos.Dispose();
        Ghosts.Dispose();
        Ptys.Dispose();
        Memfds.Dispose();
    }
}
