using Crisp.Compel;
using Crisp.Compel.Puppets;
using Crisp.Dump;
using Crisp.Images.Proto;
using Crisp.Linux;
using Crisp.Linux.Proc;

namespace Crisp.Resources.Mounts;

/// <summary>Reaches a hidden (overmounted) mount of the tree at dump, to archive its files: a single-threaded
/// puppet joins the tree's mount namespace, unshares a private copy of it and, in that copy only, unmounts what
/// covers the mount one by one until its mount point reaches it; crisp then reads it through
/// /proc/PUPPET/root. The tree's own namespace is never changed (the copy is made private before any unmount).</summary>
internal sealed class OvermountedReader : IDisposable
{
    private readonly Puppet _puppet;
    private readonly MountMaker _calls;
    private readonly int _nsFd;

    private OvermountedReader(Puppet puppet, MountMaker calls, int nsFd) => (_puppet, _calls, _nsFd) = (puppet, calls, nsFd);

    public static OvermountedReader Open(DumpContext ctx, int pid)
    {
        var puppet = Puppet.Spawn(new Seizer(ctx.Tracer));
        try
        {
            string ns = Procfs.Host.Path(pid, "ns/mnt");
            ulong at = puppet.Remote.PutOnScratch(System.Text.Encoding.UTF8.GetBytes(ns + "\0"));
            int fd = (int)puppet.Call($"open({ns})", Sysno.openat, FileIo.AT_FDCWD, (long)at, FileIo.O_RDONLY | FileIo.O_CLOEXEC);
            return new OvermountedReader(puppet, new MountMaker(puppet, "", "", ctx.Images, _ => throw new InvalidOperationException("no external mounts are made here"), ctx.Log), fd);
        }
        catch
        {
            puppet.Kill();
            throw;
        }
    }

    /// <summary>A fresh private copy of the tree's namespace with <paramref name="m"/> uncovered; returns the path
    /// at which crisp reads it.</summary>
    public string Uncover(mnt_entry m)
    {
        _puppet.Call("setns(the tree's mount namespace)", Sysno.setns, _nsFd, (long)Clone3.CLONE_NEWNS);
        _puppet.Call("unshare(CLONE_NEWNS)", Sysno.unshare, (long)Clone3.CLONE_NEWNS);
        _calls.Mount("make the copy private", null, "/", null, MountFlags.MS_REC | MountFlags.MS_PRIVATE, null);
        for (int round = 0; round < 256; round++)
        {
            var table = MountInfo.Read(_puppet.Pid);
            var nodes = table.Select(e => new MountCover.Node((uint)e.MountId, (uint)e.ParentId, e.MountPoint)).ToList();
            var twin = table.LastOrDefault(e => ((e.Major << 20) | e.Minor) == m.RootDev && e.Root == m.Root && e.MountPoint == m.Mountpoint)
                ?? throw new CrispException($"{MountPlan.Describe(m)}: not found in a copy of the tree's mount namespace");
            var covers = MountCover.Covers(nodes, (uint)twin.MountId);
            if (covers.Count == 0)
                return Procfs.Host.Path(_puppet.Pid, $"root{MountMaker.Join(m.Mountpoint)}");
            // umount2 takes the mount on top at that place; the loop goes on until none is left over it.
            _calls.Detach(covers[0].MountPoint);
        }
        throw new CrispException($"{MountPlan.Describe(m)}: still covered after 256 unmounts in a copy of the tree's mount namespace");
    }

    public void Dispose()
    {
        _puppet.Kill();
        _puppet.Dispose();
    }
}
