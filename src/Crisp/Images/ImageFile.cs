namespace Crisp.Images;

/// <summary>One image file of a checkpoint: its kind and, for per-task/per-set kinds, its id.</summary>
public readonly record struct ImageFile(ImageKind Kind, long? Id)
{
    public string FileName => Kind.FileName(Id);

    public override string ToString() => FileName;

    public static ImageFile Inventory => new(ImageKind.Inventory, null);
    public static ImageFile Pstree => new(ImageKind.Pstree, null);
    public static ImageFile Core(long tid) => new(ImageKind.Core, tid);
    public static ImageFile Ids(long pid) => new(ImageKind.Ids, pid);
    public static ImageFile Creds(long pid) => new(ImageKind.Creds, pid);
    public static ImageFile Fs(long pid) => new(ImageKind.Fs, pid);
    public static ImageFile Mm(long id) => new(ImageKind.Mm, id);
    public static ImageFile Pagemap(long pid) => new(ImageKind.Pagemap, pid);
    public static ImageFile ShmemPagemap(long shmid) => new(ImageKind.ShmemPagemap, shmid);
    public static ImageFile Pages(long pagesId) => new(ImageKind.Pages, pagesId);
    public static ImageFile Fdinfo(long filesId) => new(ImageKind.Fdinfo, filesId);
    public static ImageFile Files => new(ImageKind.Files, null);
    public static ImageFile RegFiles => new(ImageKind.RegFiles, null);
    public static ImageFile MemfdInode => new(ImageKind.MemfdInode, null);
    public static ImageFile Pipes => new(ImageKind.Pipes, null);
    public static ImageFile PipesData => new(ImageKind.PipesData, null);
    public static ImageFile Fifo => new(ImageKind.Fifo, null);
    public static ImageFile FifoData => new(ImageKind.FifoData, null);
    public static ImageFile Sigacts(long pid) => new(ImageKind.Sigacts, pid);
    public static ImageFile Itimers(long pid) => new(ImageKind.Itimers, pid);
    public static ImageFile PosixTimers(long pid) => new(ImageKind.PosixTimers, pid);
    public static ImageFile Rlimit(long pid) => new(ImageKind.Rlimit, pid);
    public static ImageFile Seccomp => new(ImageKind.Seccomp, null);
    public static ImageFile TtyFiles => new(ImageKind.TtyFiles, null);
    public static ImageFile TtyInfo => new(ImageKind.TtyInfo, null);
    public static ImageFile TtyData => new(ImageKind.TtyData, null);
    public static ImageFile SkQueues => new(ImageKind.SkQueues, null);
    public static ImageFile TcpStream(long ino) => new(ImageKind.TcpStream, ino);
    public static ImageFile RemapFpath => new(ImageKind.RemapFpath, null);
    public static ImageFile GhostFile(long id) => new(ImageKind.GhostFile, id);
    public static ImageFile FileLocks => new(ImageKind.FileLocks, null);
    public static ImageFile IpcVar(long nsId) => new(ImageKind.IpcVar, nsId);
    public static ImageFile IpcnsShm(long nsId) => new(ImageKind.IpcnsShm, nsId);
    public static ImageFile IpcnsMsg(long nsId) => new(ImageKind.IpcnsMsg, nsId);
    public static ImageFile IpcnsSem(long nsId) => new(ImageKind.IpcnsSem, nsId);
    public static ImageFile Utsns(long nsId) => new(ImageKind.Utsns, nsId);
    public static ImageFile Timens(long nsId) => new(ImageKind.Timens, nsId);
    public static ImageFile Netdev(long nsId) => new(ImageKind.Netdev, nsId);
    public static ImageFile Netns(long nsId) => new(ImageKind.Netns, nsId);
    public static ImageFile Ifaddr(long nsId) => new(ImageKind.Ifaddr, nsId);
    public static ImageFile Route(long nsId) => new(ImageKind.Route, nsId);
    public static ImageFile Route6(long nsId) => new(ImageKind.Route6, nsId);
    public static ImageFile Nftables(long nsId) => new(ImageKind.Nftables, nsId);
    public static ImageFile Cgroup => new(ImageKind.Cgroup, null);
    public static ImageFile Mountpoints(long nsId) => new(ImageKind.Mnts, nsId);
}
