using System.Text;
using Crisp.Dump;
using Crisp.Images;
using Crisp.Images.Proto;
using Crisp.Linux;
using Crisp.Restore;

namespace Crisp.Resources.Namespaces;

/// <summary>A UTS namespace of the tree's own: its hostname and domainname, in CRIU's utsns-ID.img. Read by a
/// crisp thread that joined the namespace (/proc/sys/kernel answers for the reader's namespace); set in the
/// root puppet, cloned with CLONE_NEWUTS.</summary>
public sealed class UtsNamespace : INamespaceContent
{
    /// <summary>__NEW_UTS_LEN: the kernel's limit for both names.</summary>
    private const int MaxLength = 64;

    public NamespaceKind Kind => NamespaceKind.Uts;

    public void Dump(DumpContext ctx, DumpTask root, uint id)
    {
        var entry = NamespaceThread.Run(root.Pid, Kind, () => new utsns_entry
        {
            Nodename = File.ReadAllText("/proc/sys/kernel/hostname").TrimEnd('\n'),
            Domainname = File.ReadAllText("/proc/sys/kernel/domainname").TrimEnd('\n'),
        });
        ctx.Images.Write(ImageFile.Utsns(id), entry);
        ctx.Log.Debug($"uts namespace {id}: hostname '{entry.Nodename}', domainname '{entry.Domainname}'");
    }

    public void Prepare(RestoreContext ctx, uint id)
    {
        var file = ImageFile.Utsns(id);
        var entry = ctx.Images.ReadRequired<utsns_entry>(file, "the root task has a uts namespace of its own");
        foreach (var (what, name) in new[] { ("hostname", entry.Nodename), ("domainname", entry.Domainname) })
            if (Encoding.UTF8.GetByteCount(name) > MaxLength)
                throw new CrispException($"{file.FileName}: {what} of {Encoding.UTF8.GetByteCount(name)} bytes (the kernel allows {MaxLength})");
        ctx.Namespaces.Uts.ById[id] = entry;
    }

    public void Restore(RestoreContext ctx, RestoreTask root, uint id)
    {
        var entry = ctx.Namespaces.Uts.ById[id];
        Set(root, "sethostname", Sysno.sethostname, entry.Nodename);
        Set(root, "setdomainname", Sysno.setdomainname, entry.Domainname);
    }

    private static void Set(RestoreTask root, string call, long nr, string name)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(name);
        ulong at = root.Puppet.Remote.PutOnScratch(bytes.Length == 0 ? [0] : bytes);
        root.Call($"{call}({name})", nr, (long)at, bytes.Length);
    }

    /// <summary>The names read at Prepare, by namespace id.</summary>
    public sealed class Names
    {
        public Dictionary<uint, utsns_entry> ById { get; } = [];
    }
}
