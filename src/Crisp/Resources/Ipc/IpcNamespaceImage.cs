using System.Runtime.InteropServices;
using Crisp.Images;
using Crisp.Images.Proto;

namespace Crisp.Resources.Ipc;

/// <summary>A queue and its messages, oldest first.</summary>
public sealed record IpcQueue(ipc_msg_entry Entry, List<(long Type, byte[] Text)> Messages);

/// <summary>A semaphore set and its values.</summary>
public sealed record IpcSemSet(ipc_sem_entry Entry, ushort[] Values);

/// <summary>What ipcns-{var,shm,msg,sem}-NSID.img hold, CRIU's layout: sem values and message texts raw after
/// their entries, padded to 8 bytes; segment contents in pagemap-shmem-ID.img (in_pagemaps), or raw after the
/// entry, padded to 4, in older images. A namespace the tree shares with crisp has only ipcns-shm (the
/// segments the tree has attached); one of its own has all four.</summary>
public sealed class IpcNamespaceImage
{
    public ipc_var_entry? Var { get; set; }
    public List<ipc_shm_entry> Segments { get; } = [];
    /// <summary>Contents of segments stored raw in ipcns-shm (not in_pagemaps), by id.</summary>
    public Dictionary<uint, byte[]> RawContents { get; } = [];
    public List<IpcQueue> Queues { get; } = [];
    public List<IpcSemSet> Sems { get; } = [];

    public void Write(ImageDirectory images, uint nsId)
    {
        if (Var is not null)
        {
            images.Write(ImageFile.IpcVar(nsId), Var);
            using var msg = images.CreateWriter(ImageFile.IpcnsMsg(nsId));
            foreach (var q in Queues)
            {
                msg.Write(q.Entry);
                foreach (var (type, text) in q.Messages)
                    msg.Write(new ipc_msg { Mtype = (ulong)type, Msize = (uint)text.Length }, Padded(text, 8));
            }
            using var sem = images.CreateWriter(ImageFile.IpcnsSem(nsId));
            foreach (var s in Sems)
                sem.Write(s.Entry, Padded(MemoryMarshal.AsBytes(s.Values.AsSpan()).ToArray(), 8));
        }
        using var shm = images.CreateWriter(ImageFile.IpcnsShm(nsId));
        foreach (var s in Segments)
            shm.Write(s);
    }

    /// <summary>Reads the images of namespace <paramref name="nsId"/>; <paramref name="whole"/>: all four must be
    /// there (the tree's own namespace), else only ipcns-shm, if any. Bad input fails here, before anything exists.</summary>
    public static IpcNamespaceImage Read(ImageDirectory images, uint nsId, bool whole)
    {
        var image = new IpcNamespaceImage();
        if (whole)
        {
            var varFile = ImageFile.IpcVar(nsId);
            Require(images, varFile);
            image.Var = images.ReadAll<ipc_var_entry>(varFile).SingleOrDefault()
                ?? throw new CrispException($"{images.PathOf(varFile)}: expected one ipc_var_entry");
            // CRIU removes an image it wrote no entry into: a missing msg, sem or shm image is an empty one.
            var msgFile = ImageFile.IpcnsMsg(nsId);
            if (images.Exists(msgFile))
            {
                using var r = images.OpenReader(msgFile);
                while (r.Read<ipc_msg_entry>() is { } q)
                {
                    var messages = new List<(long, byte[])>();
                    for (uint i = 0; i < q.Qnum; i++)
                    {
                        var m = r.Read<ipc_msg>() ?? throw new CrispException($"{images.PathOf(msgFile)}: queue {q.Desc.Id} lists {q.Qnum} messages, the file ends after {i}");
                        var text = r.ReadExtra(RoundUp(m.Msize, 8));
                        messages.Add(((long)m.Mtype, text.AsSpan(0, (int)m.Msize).ToArray()));
                    }
                    image.Queues.Add(new IpcQueue(q, messages));
                }
            }
            var semFile = ImageFile.IpcnsSem(nsId);
            if (images.Exists(semFile))
            {
                using var r = images.OpenReader(semFile);
                while (r.Read<ipc_sem_entry>() is { } s)
                {
                    var raw = r.ReadExtra(RoundUp(s.Nsems * 2, 8));
                    image.Sems.Add(new IpcSemSet(s, MemoryMarshal.Cast<byte, ushort>(raw.AsSpan(0, (int)s.Nsems * 2)).ToArray()));
                }
            }
        }
        var shmFile = ImageFile.IpcnsShm(nsId);
        if (images.Exists(shmFile))
        {
            using var r = images.OpenReader(shmFile);
            while (r.Read<ipc_shm_entry>() is { } s)
            {
                if (s.HasHugetlbFlag && s.HugetlbFlag != 0)
                    throw new CrispException($"{images.PathOf(shmFile)}: segment {s.Desc.Id} is a hugetlb segment, not supported yet");
                image.Segments.Add(s);
                if (!(s.HasInPagemaps && s.InPagemaps))
                    image.RawContents[s.Desc.Id] = r.ReadExtra(RoundUp((long)s.Size, 4));
                else if (!images.Exists(ImageFile.ShmemPagemap(s.Desc.Id)))
                    throw new CrispException($"{images.PathOf(ImageFile.ShmemPagemap(s.Desc.Id))}: missing (contents of SysV segment {s.Desc.Id})");
            }
        }
        return image;
    }

    private static void Require(ImageDirectory images, ImageFile file)
    {
        if (!images.Exists(file))
            throw new CrispException($"{images.PathOf(file)}: missing (the tree's IPC namespace)");
    }

    private static long RoundUp(long n, long to) => (n + to - 1) / to * to;

    private static byte[] Padded(byte[] data, int to)
    {
        var padded = new byte[RoundUp(data.Length, to)];
        data.CopyTo(padded, 0);
        return padded;
    }
}
