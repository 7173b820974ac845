using System.Globalization;
using System.Text;
using Crisp.Dump;
using Crisp.Images;
using Crisp.Images.Proto;
using Crisp.Linux.Proc;
using Crisp.Linux;
using Crisp.Restore;

namespace Crisp.Resources.Namespaces;

/// <summary>A time namespace of the tree's own: CLOCK_MONOTONIC and CLOCK_BOOTTIME as the tree saw them at dump,
/// in CRIU's timens-ID.img. At restore the new namespace gets offsets that make both clocks go on from those
/// values, whatever the host's clocks say now (another boot, another host): offset = dumped − host's now.
/// The kernel takes offsets only before a task is in the namespace, so the root puppet is not cloned into it:
/// it unshares one (its children's), crisp writes the offsets, then the root joins it (single-threaded, it may).</summary>
public sealed class TimeNamespace : INamespaceContent
{
    private const int CLOCK_MONOTONIC = 1, CLOCK_BOOTTIME = 7;
    private const long NsPerSec = 1_000_000_000;

    public NamespaceKind Kind => NamespaceKind.Time;

    public bool MadeByClone => false;

    /// <summary>crisp cannot join a time namespace (the kernel wants a single-threaded caller), so the tree's
    /// clocks are the host's plus the namespace's offsets, both read from /proc (crisp's own taken away first,
    /// should crisp itself run in a time namespace).</summary>
    public void Dump(DumpContext ctx, DumpTask root, uint id)
    {
        var own = Offsets.Read(0);
        var tree = Offsets.Read(root.Pid);
        var entry = new timens_entry
        {
            Monotonic = Spec(Now(CLOCK_MONOTONIC) + tree.Monotonic - own.Monotonic),
            Boottime = Spec(Now(CLOCK_BOOTTIME) + tree.Boottime - own.Boottime),
        };
        ctx.Images.Write(ImageFile.Timens(id), entry);
        ctx.Log.Debug($"time namespace {id}: monotonic {entry.Monotonic.TvSec}.{entry.Monotonic.TvNsec:D9}, boottime {entry.Boottime.TvSec}.{entry.Boottime.TvNsec:D9}");
    }

    public void Prepare(RestoreContext ctx, uint id)
    {
        var file = ImageFile.Timens(id);
        var entry = ctx.Images.ReadRequired<timens_entry>(file, "the root task has a time namespace of its own");
        foreach (var (what, t) in new[] { ("monotonic", entry.Monotonic), ("boottime", entry.Boottime) })
            if (t is null || t.TvNsec >= NsPerSec || t.TvSec > long.MaxValue / NsPerSec)
                throw new CrispException($"{file.FileName}: {what} clock {t?.TvSec}.{t?.TvNsec} is not a time");
        ctx.Namespaces.Time.ById[id] = entry;
    }

    public void Enter(RestoreContext ctx, RestoreTask root, uint id)
    {
        var entry = ctx.Namespaces.Time.ById[id];
        root.Call("unshare(CLONE_NEWTIME)", Sysno.unshare, (long)Clone3.CLONE_NEWTIME);
        var own = Offsets.Read(0);
        // Both offsets from one look at crisp's clocks; crisp's own offsets turn them into the host's.
        long monotonic = Nanos(entry.Monotonic) - (Now(CLOCK_MONOTONIC) - own.Monotonic);
        long boottime = Nanos(entry.Boottime) - (Now(CLOCK_BOOTTIME) - own.Boottime);
        string offsets = $"{CLOCK_MONOTONIC} {Sec(monotonic)} {NsecOf(monotonic)}\n{CLOCK_BOOTTIME} {Sec(boottime)} {NsecOf(boottime)}\n";
        try
        {
            File.WriteAllText(Procfs.Host.Path(root.HostPid, "timens_offsets"), offsets);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CrispException($"setting the time namespace's offsets (monotonic {monotonic} ns, boottime {boottime} ns): {e.Message}");
        }
        byte[] path = Encoding.ASCII.GetBytes("/proc/self/ns/time_for_children\0");
        ulong at = root.Puppet.Remote.PutOnScratch(path);
        long fd = root.Call("open(/proc/self/ns/time_for_children)", Sysno.openat, -100, (long)at, FileIo.O_RDONLY | FileIo.O_CLOEXEC);
        try
        {
            root.Call("setns(time_for_children)", Sysno.setns, fd, (long)Clone3.CLONE_NEWTIME);
        }
        finally
        {
            root.Puppet.Remote.Syscall(Sysno.close, fd);
        }
        ctx.Log.Info($"time namespace {id}: offsets monotonic {monotonic} ns, boottime {boottime} ns");
    }

    public void Restore(RestoreContext ctx, RestoreTask root, uint id) { }

    private static long Now(int clock)
    {
        var (sec, nsec) = EventObjects.Now(clock);
        return sec * NsPerSec + nsec;
    }

    private static long Nanos(timespec t) => (long)t.TvSec * NsPerSec + (long)t.TvNsec;
    private static long Sec(long ns) => Math.DivRem(ns, NsPerSec).Quotient - (ns % NsPerSec < 0 ? 1 : 0);
    private static long NsecOf(long ns) => ((ns % NsPerSec) + NsPerSec) % NsPerSec;

    private static timespec Spec(long ns)
    {
        if (ns < 0)
            throw new CrispException($"the tree's clock reads {ns} ns: before the boot");
        return new timespec { TvSec = (ulong)(ns / NsPerSec), TvNsec = (ulong)(ns % NsPerSec) };
    }

    /// <summary>/proc/PID/timens_offsets (pid 0: crisp's own): "monotonic SEC NSEC" and "boottime SEC NSEC", in nanoseconds.</summary>
    private readonly record struct Offsets(long Monotonic, long Boottime)
    {
        public static Offsets Read(int pid)
        {
            string path = Procfs.Host.Path(pid, "timens_offsets");
            long mono = 0, boot = 0;
            string text;
            try { text = File.ReadAllText(path); }
            catch (FileNotFoundException) { return default; }   // a kernel without time namespaces
            foreach (var line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries))
            {
                var f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (f.Length != 3 || !long.TryParse(f[1], CultureInfo.InvariantCulture, out long s) || !long.TryParse(f[2], CultureInfo.InvariantCulture, out long n))
                    throw new CrispException($"{path}: unexpected line '{line}'");
                long v = s * NsPerSec + n;
                if (f[0] == "monotonic" || f[0] == "1")
                    mono = v;
                else if (f[0] == "boottime" || f[0] == "7")
                    boot = v;
            }
            return new Offsets(mono, boot);
        }
    }

    /// <summary>The clocks read at Prepare, by namespace id.</summary>
    public sealed class Clocks
    {
        public Dictionary<uint, timens_entry> ById { get; } = [];
    }
}
