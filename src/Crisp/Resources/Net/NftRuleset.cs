using System.Diagnostics;
using System.Text;
using Crisp.Linux;

namespace Crisp.Resources.Net;

/// <summary>A network namespace's nftables ruleset as CRIU keeps it in nftables-ID.img: the text of
/// `list ruleset`, loaded back as an nft script. CRIU calls libnftables; crisp runs the nft program (the same
/// library behind it), started by a throwaway thread that has joined the namespace (a child inherits the
/// thread's namespaces), with stdin and stdout on memfds.</summary>
public static class NftRuleset
{
    private static readonly string[] Places = ["/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft", "/usr/local/sbin/nft"];
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(60);

    /// <summary>`nft list ruleset` in <paramref name="netns"/>; empty when nft is not installed and the
    /// namespace can have no rules made by it (no nf_tables module loaded).</summary>
    public static byte[] List(UnixFd netns)
    {
        if (Find() is null)
        {
            if (File.Exists("/proc/net/nf_tables") || Directory.Exists("/sys/module/nf_tables"))
                throw new CrispException("nftables: nft not found, so the namespace's ruleset cannot be dumped (install nftables)");
            return [];
        }
        return Run(netns, ["list", "ruleset"], [], "nft list ruleset");
    }

    /// <summary>`nft -f -` with the saved ruleset in <paramref name="netns"/>; nothing for an empty one.</summary>
    public static void Load(UnixFd netns, byte[] ruleset)
    {
        if (ruleset.Length == 0)
            return;
        if (Find() is null)
            throw new CrispException("nftables-*.img: the namespace had nftables rules but nft is not installed here");
        Run(netns, ["-f", "-"], ruleset, "nft -f (the saved ruleset)");
    }

    private static string? Find() => Places.FirstOrDefault(File.Exists);

    private static byte[] Run(UnixFd netns, string[] args, byte[] input, string what)
    {
        string nft = Find()!;
        using var stdin = Memfd.Create("crisp-nft-in");
        using var stdout = Memfd.Create("crisp-nft-out");
        using var stderr = Memfd.Create("crisp-nft-err");
        FileIo.PWriteExactly(stdin.Fd, input, 0);
        int pid = NetNamespaces.Run(netns, () => Spawn.Start(nft, [nft, .. args],
            new SpawnOptions { Fds = [(stdin.Fd, 0), (stdout.Fd, 1), (stderr.Fd, 2)] }));
        var clock = Stopwatch.StartNew();
        WaitStatus? status;
        while ((status = Spawn.TryReap(pid)) is null)
        {
            if (clock.Elapsed > Limit)
            {
                Linux.Signals.TryKill(pid);
                Spawn.Reap(pid);
                throw new CrispException($"{what} did not finish within {Limit.TotalSeconds:F0} s");
            }
            Thread.Sleep(clock.ElapsedMilliseconds < 100 ? 1 : 10);
        }
        if (!status.Value.Exited || status.Value.ExitCode != 0)
        {
            string err = Encoding.UTF8.GetString(ReadAll(stderr)).Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).FirstOrDefault() ?? "";
            throw new CrispException($"{what} failed ({(status.Value.Exited ? $"exit {status.Value.ExitCode}" : $"signal {status.Value.TermSignal}")}): {err}");
        }
        return ReadAll(stdout);
    }

    private static byte[] ReadAll(UnixFd fd)
    {
        long size = FileIo.Seek(fd.Fd, 0, FileIo.SEEK_END);
        var buffer = new byte[size];
        FileIo.PReadFully(fd.Fd, buffer, 0);
        return buffer;
    }
}
