using Crisp.Linux;
using Crisp.Tests.Integration;
using Crisp.Tests.Support;

namespace Crisp.Tests.Rpc;

/// <summary>A client crisp did not write: Debian's pycriu (criu's own Python binding of libcriu's protocol, shipped
/// with the criu package the tests install for crit) execs crisp as `swrk` with fds 0-2 closed and runs CHECK, a DUMP
/// of a live process, a RESTORE of it and a DUMP with an option crisp lacks.</summary>
public class PycriuClientTests
{
    private const string Script = """
        import os, sys, subprocess, time, pycriu
        crisp, images = sys.argv[1], sys.argv[2]
        sleeper = subprocess.Popen(["sleep", "1000"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, start_new_session=True)
        pid = sleeper.pid
        while open(f"/proc/{pid}/comm").read().strip() != "sleep":
            time.sleep(0.01)
        print("pid", pid)
        c = pycriu.criu()
        c.use_binary(crisp)
        c.check()
        fd = os.open(images, os.O_DIRECTORY)
        c.opts.images_dir_fd = fd
        c.opts.pid = pid
        c.opts.log_file = "dump.log"
        c.opts.log_level = 4
        print("dumped", c.dump().restored)
        sleeper.wait()
        c.opts.ClearField("pid")
        c.opts.log_file = "restore.log"
        print("restored", c.restore().pid)
        c.opts.lazy_pages = True
        try:
            c.dump()
        except Exception as e:
            print("refused", e.errno)
        """;

    [RootFact]
    public void PycriuDumpsAndRestoresThroughCrispSwrk()
    {
        using var dir = new Live.TempDir();
        string images = SwrkTests.MakeDir(dir.Images), script = Path.Combine(dir.Path, "client.py");
        File.WriteAllText(script, Script);
        int pid = 0;
        try
        {
            var run = CrispCli.RunProcess("/usr/bin/python3", TimeSpan.FromSeconds(120), null, script, CrispCli.Exe, images);
            var lines = run.Stdout.Split('\n');
            pid = lines[0].StartsWith("pid ") ? int.Parse(lines[0][4..]) : 0;
            Assert.True(run.ExitCode == 0, $"{run.Stdout}\n{run.Stderr}\n{SwrkTests.Log(images, "dump.log")}\n{SwrkTests.Log(images, "restore.log")}");
            Assert.Equal($"pid {pid}\ndumped False\nrestored {pid}\nrefused 56\n", run.Stdout);
            Assert.Equal("sleep\01000\0", File.ReadAllText($"/proc/{pid}/cmdline"));
        }
        finally
        {
            if (pid > 0)
                Live.KillAll([pid]);
        }
    }
}
