using Crisp.Linux;
using Crisp.Tests.Integration;
using Crisp.Tests.Support;

namespace Crisp.Tests.Migration;

/// <summary>"Two hosts" on one machine: a network namespace of the test's own joined to the root one by a veth pair
/// (10.233.N.1 here, 10.233.N.2 there). `crisp receive` runs there in a pid and mount namespace of its own too
/// (`ip netns exec NS unshare -p -f --kill-child --mount-proc`), so the tree it restores takes the same pids as the
/// source tree that still runs here. Everything is removed at the end, whatever happened.</summary>
internal sealed class TwoHosts : IDisposable
{
    private readonly string _linkHere;
    private readonly List<Receiver> _receivers = [];

    public TwoHosts()
    {
        int n = Random.Shared.Next(1, 250);
        string id = $"{Environment.ProcessId % 10000:x}{n:x2}";
        Ns = $"crisp-mig-{id}";
        _linkHere = $"crm{id}a";
        string there = $"crm{id}b";
        Here = $"10.233.{n}.1";
        There = $"10.233.{n}.2";
        Service = $"10.233.{n}.9";
        try
        {
            Ip("netns", "add", Ns);
            Ip("link", "add", _linkHere, "type", "veth", "peer", "name", there);
            Ip("link", "set", there, "netns", Ns);
            Ip("addr", "add", $"{Here}/30", "dev", _linkHere);
            Ip("link", "set", _linkHere, "up");
            Ip("netns", "exec", Ns, "ip", "addr", "add", $"{There}/30", "dev", there);
            Ip("netns", "exec", Ns, "ip", "link", "set", there, "up");
            Ip("netns", "exec", Ns, "ip", "link", "set", "lo", "up");
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public string Ns { get; }
    public string Here { get; }
    public string There { get; }

    /// <summary>An address that moves with a migrated server, as a service address moves with its container: on
    /// both hosts' loopback (<see cref="AddService"/>), where this host, which routes it to itself first, is the
    /// one that answers, until <see cref="MoveServiceThere"/>.</summary>
    public string Service { get; }
    private bool _serviceHere;

    public void AddService()
    {
        Ip("netns", "exec", Ns, "ip", "addr", "add", $"{Service}/32", "dev", "lo");
        Ip("addr", "add", $"{Service}/32", "dev", "lo");
        _serviceHere = true;
    }

    /// <summary>The service address leaves this host and is routed to the other one, where it already is.</summary>
    public void MoveServiceThere()
    {
        Ip("addr", "del", $"{Service}/32", "dev", "lo");
        _serviceHere = false;
        Ip("route", "add", $"{Service}/32", "via", There);
    }

    public Receiver StartReceiver(string dir, int port, string[] extra, string env = "")
    {
        var r = new Receiver(this, dir, port, extra, env);
        _receivers.Add(r);
        return r;
    }

    public void Dispose()
    {
        foreach (var r in _receivers)
            r.Kill();
        if (_serviceHere)
            TryIp("addr", "del", $"{Service}/32", "dev", "lo");
        TryIp("netns", "del", Ns);
        TryIp("link", "del", _linkHere);   // with the service's route through it
    }

    private static void Ip(params string[] args)
    {
        var r = Live.RunProcess("/usr/sbin/ip", TimeSpan.FromSeconds(30), null, args);
        Assert.True(r.ExitCode == 0, $"ip {string.Join(' ', args)}: {r.Stderr}");
    }

    private static void TryIp(params string[] args) => Live.RunProcess("/usr/sbin/ip", TimeSpan.FromSeconds(30), null, args);

    /// <summary>`crisp receive` on the other host, once it listens; its exit code, stdout and stderr land in files.</summary>
    internal sealed class Receiver
    {
        private readonly int _pid;
        private readonly string _out;
        private bool _gone;

        public Receiver(TwoHosts hosts, string dir, int port, string[] extra, string env)
        {
            _out = Path.Combine(Path.GetDirectoryName(dir)!, $"receive-{port}");
            string args = string.Join(' ', extra.Select(a => $"'{a}'"));
            string script = $"{env} '{CrispCli.Exe}' receive --port {port} -D '{dir}' {args} >'{_out}.out' 2>'{_out}.err'; echo $? >'{_out}.rc'; exec sleep 600";
            _pid = Spawn.Start("/usr/sbin/ip", ["ip", "netns", "exec", hosts.Ns, "unshare", "-p", "-f", "--kill-child", "--mount-proc", "sh", "-c", script],
                new SpawnOptions { NewSession = true, Opens = Live.DevNullStdio });
            string hexPort = $":{port:X4} ";
            Live.WaitFor(() => File.Exists($"{_out}.rc") || Listening(hexPort), "crisp receive to listen", TimeSpan.FromSeconds(20));
            Assert.False(File.Exists($"{_out}.rc"), $"crisp receive exited: {Stderr}");
        }

        private bool Listening(string hexPort)
        {
            try { return File.ReadLines($"/proc/{_pid}/net/tcp").Any(l => l.Contains(hexPort) && l.Split(' ', StringSplitOptions.RemoveEmptyEntries)[3] == "0A"); }
            catch (IOException) { return false; }
        }

        /// <summary>The other host's network namespace, as /proc/PID/ns/net names it (to tell where a process runs).</summary>
        public string? NetNs => new FileInfo($"/proc/{_pid}/ns/net").LinkTarget;

        public string Stderr => File.Exists($"{_out}.err") ? File.ReadAllText($"{_out}.err") : "";
        public string Stdout => File.Exists($"{_out}.out") ? File.ReadAllText($"{_out}.out") : "";

        /// <summary>crisp receive's exit code, once it ended (its namespace lives on while the restored tree runs).</summary>
        public int Wait()
        {
            Live.WaitFor(() => File.Exists($"{_out}.rc") && File.ReadAllText($"{_out}.rc").EndsWith('\n'), "crisp receive to end", TimeSpan.FromSeconds(60));
            return int.Parse(File.ReadAllText($"{_out}.rc").Trim());
        }

        /// <summary>SIGKILL: unshare's child (the namespace's init) dies with it, and every task of the namespace.</summary>
        public void Kill()
        {
            if (_gone)
                return;
            _gone = true;
            RawSyscall.TryCall(Sysno.kill, _pid, Live.SIGKILL);
            Spawn.Reap(_pid);
        }
    }
}
