using System.Formats.Tar;
using Crisp.Tests.Hardened;
using Crisp.Tests.Support;

namespace Crisp.Tests.Runtimes;

/// <summary>A busybox container run by Debian's Podman with `--runtime runc` and crisp installed as `criu` (first
/// on PATH for podman, runc and go-criu's version check). The image is imported from a tarball the test makes (no
/// registry here); the container counts 0, 1, 2… into /data/count, a host directory bound as a volume (so runc
/// names it an external mount). Podman on these machines needs containers.conf's default_ulimits within the hard
/// limits, the cgroupfs manager and the file events logger: <see cref="Configure"/> writes them.</summary>
internal sealed class PodmanContainer : IDisposable
{
    public const string Image = "localhost/crisp-busybox:test";
    private const string Conf = "/etc/containers/containers.conf";
    private static readonly object s_once = new();
    private static bool s_ready;

    private readonly string _dir;
    public string Name { get; }
    public string Data => Path.Combine(_dir, "data");
    private string Prefix => Path.Combine(_dir, "prefix");

    public PodmanContainer(string name)
    {
        _dir = Directory.CreateTempSubdirectory("crisp-podman-").FullName;
        Name = $"crisp-{name}-{Environment.ProcessId}";
        var install = CrispCli.Run("install", "--as-criu", "--prefix", Prefix);
        Assert.True(install.ExitCode == 0, $"crisp install: {install.Stderr}");
        Directory.CreateDirectory(Data);
        File.SetUnixFileMode(Data, (UnixFileMode)0x1ff);
        lock (s_once)
        {
            if (!s_ready)
            {
                Configure();
                ImportImage();
                s_ready = true;
            }
        }
    }

    /// <summary>`podman run -d` with the counter; <paramref name="options"/> go before the image.</summary>
    public void Run(params string[] options) =>
        Podman(["run", "-d", "--name", Name, "--runtime", "runc", "--network", "none", "-v", $"{Data}:/data", .. options,
            Image, "sh", "-c", "i=0; while :; do echo $i >> /data/count; i=$((i+1)); usleep 20000; done"]);

    public string Podman(params string[] args)
    {
        var r = CrispCli.RunProcess("podman", TimeSpan.FromSeconds(120), Env(), args);
        Assert.True(r.ExitCode == 0, $"podman {string.Join(' ', args)}: exit {r.ExitCode}\n{r.Stdout}\n{r.Stderr}\n{Logs()}");
        return r.Stdout.Trim();
    }

    /// <summary>The container's init as the host sees it.</summary>
    public int Pid => int.Parse(Podman("inspect", "--format", "{{.State.Pid}}", Name));

    public string Status => Podman("inspect", "--format", "{{.State.Status}}", Name);

    public List<long> Numbers()
    {
        string file = Path.Combine(Data, "count");
        return File.Exists(file) ? [.. File.ReadAllLines(file).Where(l => l.Length > 0).Select(long.Parse)] : [];
    }

    public void WaitCounting(int atLeast, string what) =>
        Bench.WaitFor(() => Numbers().Count >= atLeast, what, 30);

    public void AssertContinuous()
    {
        var numbers = Numbers();
        Assert.Equal(Enumerable.Range(0, numbers.Count).Select(i => (long)i), numbers);
    }

    /// <summary>crisp's logs of the container's last checkpoint and restore (Podman keeps them in its userdata).</summary>
    private string Logs()
    {
        try
        {
            var r = CrispCli.RunProcess("podman", TimeSpan.FromSeconds(20), Env(), "inspect", "--format", "{{.StaticDir}}", Name);
            string dir = r.Stdout.Trim();
            return string.Join('\n', new[] { "dump.log", "restore.log" }.Select(f => Path.Combine(dir, f)).Where(File.Exists)
                .Select(f => string.Join('\n', File.ReadAllLines(f).Where(l => !l.Contains("Debug:")).TakeLast(12))));
        }
        catch (Exception e) when (e is IOException or TimeoutException) { return ""; }
    }

    private Dictionary<string, string> Env() =>
        new() { ["PATH"] = $"{Path.Combine(Prefix, "bin")}:{Environment.GetEnvironmentVariable("PATH")}" };

    private static void Configure()
    {
        string want = "[containers]\ndefault_ulimits = [\"nofile=20000:20000\", \"nproc=32768:32768\"]\n" +
            "[engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n";
        if (!File.Exists(Conf) || File.ReadAllText(Conf) != want)
        {
            Directory.CreateDirectory(Path.GetDirectoryName(Conf)!);
            File.WriteAllText(Conf, want);
        }
    }

    /// <summary>A busybox root file system as an image: bin/busybox with the applets the tests use.</summary>
    private void ImportImage()
    {
        string tar = Path.Combine(_dir, "busybox.tar");
        using (var output = File.Create(tar))
        using (var writer = new TarWriter(output, TarEntryFormat.Pax))
        {
            foreach (var d in new[] { "bin/", "tmp/", "proc/", "sys/", "dev/", "etc/", "data/" })
                writer.WriteEntry(new PaxTarEntry(TarEntryType.Directory, d) { Mode = d == "tmp/" ? (UnixFileMode)0x3ff | UnixFileMode.StickyBit : (UnixFileMode)0x1ed });
            writer.WriteEntry("/bin/busybox", "bin/busybox");
            foreach (var applet in new[] { "sh", "usleep", "cat", "sleep" })
                writer.WriteEntry(new PaxTarEntry(TarEntryType.SymbolicLink, $"bin/{applet}") { LinkName = "busybox", Mode = (UnixFileMode)0x1ff });
        }
        var r = CrispCli.RunProcess("podman", TimeSpan.FromSeconds(120), null, "import", tar, Image);
        Assert.True(r.ExitCode == 0, $"podman import: {r.Stderr}");
    }

    public void Dispose()
    {
        try { CrispCli.RunProcess("podman", TimeSpan.FromSeconds(60), Env(), "rm", "-f", "-t", "0", Name); } catch (Exception) { }
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }
}
