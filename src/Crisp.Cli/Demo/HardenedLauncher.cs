using System.Runtime.InteropServices;
using Crisp.Compel;
using Crisp.Compel.Puppets;
using Crisp.Linux;

namespace Crisp.Cli.Demo;

/// <summary>Starts a program the way a hardened Kubernetes pod runs it (runAsUser 1000,
/// allowPrivilegeEscalation false, capabilities drop ALL, seccompProfile RuntimeDefault) — done by
/// remote syscalls in a puppet, so crisp needs no helper binary: own session, stdio on /dev/null,
/// groups cleared, uid/gid 1000, every capability dropped (bounding set too), no_new_privs, the
/// allowlist filter, the LOG-flagged marker filter, then execve.</summary>
public static class HardenedLauncher
{
    public const int Uid = 1000, Gid = 1000;

    public static int Start(string path, IReadOnlyList<string> argv, string workDir)
    {
        using var tracer = new Tracer("crisp-launcher");
        var puppet = Puppet.Spawn(new Seizer(tracer));
        try
        {
            puppet.Call("setsid", Sysno.setsid);
            puppet.Call("close_range", Sysno.close_range, 0, uint.MaxValue, 0);
            ulong devnull = puppet.Remote.PutOnScratch("/dev/null\0"u8);
            puppet.Call("open(/dev/null)", Sysno.openat, -100, (long)devnull, FileIo.O_RDONLY);
            puppet.Call("open(/dev/null)", Sysno.openat, -100, (long)devnull, FileIo.O_WRONLY);
            puppet.Call("dup(1)", Sysno.dup, 1);
            ulong dir = puppet.Remote.PutOnScratch(System.Text.Encoding.UTF8.GetBytes(workDir + "\0"));
            puppet.Call($"chdir({workDir})", Sysno.chdir, (long)dir);

            puppet.Call("setgroups", Sysno.setgroups, 0, 0);
            puppet.Call("setresgid", Sysno.setresgid, Gid, Gid, Gid);
            int lastCap = int.Parse(File.ReadAllText("/proc/sys/kernel/cap_last_cap").Trim());
            for (int cap = 0; cap <= lastCap; cap++)
                puppet.Call($"prctl(PR_CAPBSET_DROP, {cap})", Sysno.prctl, Prctl.PR_CAPBSET_DROP, cap);
            puppet.Call("prctl(PR_CAP_AMBIENT_CLEAR_ALL)", Sysno.prctl, Prctl.PR_CAP_AMBIENT, Prctl.PR_CAP_AMBIENT_CLEAR_ALL);
            puppet.Call("setresuid", Sysno.setresuid, Uid, Uid, Uid);   // clears permitted/effective caps
            ClearCapabilities(puppet);
            puppet.Call("prctl(PR_SET_NO_NEW_PRIVS)", Sysno.prctl, Prctl.PR_SET_NO_NEW_PRIVS, 1);
            LoadFilter(puppet, RuntimeDefaultProfile.Allowlist(), 0);
            LoadFilter(puppet, RuntimeDefaultProfile.GetpriorityMarker(), Seccomp.SECCOMP_FILTER_FLAG_LOG);
            puppet.Exec(path, argv, ["PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/"]);
            return puppet.Pid;
        }
        catch
        {
            puppet.Kill();
            throw;
        }
    }

    private static void ClearCapabilities(Puppet puppet)
    {
        var header = new CapUserHeader { Version = Capabilities.LINUX_CAPABILITY_VERSION_3 };
        var buffer = new byte[Marshal.SizeOf<CapUserHeader>() + 2 * Marshal.SizeOf<CapUserData>()];
        MemoryMarshal.Write(buffer, in header);
        ulong at = puppet.Remote.PutOnScratch(buffer);
        puppet.Call("capset", Sysno.capset, (long)at, (long)at + Marshal.SizeOf<CapUserHeader>());
    }

    private static unsafe void LoadFilter(Puppet puppet, byte[] program, uint flags)
    {
        var buffer = new byte[sizeof(SockFprog) + program.Length];
        ulong at = puppet.Remote.ScratchData;
        var fprog = new SockFprog { Length = (ushort)(program.Length / 8), Filter = (nint)(at + (ulong)sizeof(SockFprog)) };
        MemoryMarshal.Write(buffer, in fprog);
        program.CopyTo(buffer, sizeof(SockFprog));
        puppet.Remote.PutOnScratch(buffer);
        puppet.Call("seccomp(SECCOMP_SET_MODE_FILTER)", Sysno.seccomp, Seccomp.SECCOMP_SET_MODE_FILTER, flags, (long)at);
    }
}
