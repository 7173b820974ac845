using Crisp.Dump;
using Crisp.Linux;
using Crisp.Restore;
using Crisp.Tests.Integration;
using Crisp.Tests.Support;

namespace Crisp.Tests.Threads;

/// <summary>Seize is race-free against threads being created and exiting meanwhile
/// (tests/workloads/thr_churn.c creates and ends short-lived threads non-stop): repeated dumps that leave
/// it running all succeed and leave it churning, and a dumped and restored one churns on.</summary>
public class ThreadChurnTests
{
    private const int SIGKILL = 9;

    [RootFact]
    public void DumpsOfAProcessCreatingAndEndingThreadsSucceedAndItCarriesOn()
    {
        string dir = Directory.CreateTempSubdirectory("crisp-churn-").FullName;
        string exe = Support.Workloads.Build("thr_churn", "-pthread");
        int pid = Spawn.Start(exe, [exe, dir], new SpawnOptions { Opens = Live.DevNullStdio });
        bool alive = true;
        try
        {
            WaitFor(() => File.Exists(Path.Combine(dir, "ready")), "ready", pid);
            for (int i = 0; i < 5; i++)
            {
                string images = Path.Combine(dir, $"left{i}");
                Directory.CreateDirectory(images);
                new Dumper(new DumpOptions { RootPid = pid, ImagesDir = images, ShellJob = true, LeaveRunning = true }, Log.Null).Run();
                Assert.Contains($"core-{pid}.img", Directory.GetFiles(images).Select(Path.GetFileName));
                long before = Count(dir);
                WaitFor(() => Count(dir) > before, "churning on after a dump that left it running", pid);
            }
            string last = Path.Combine(dir, "images");
            Directory.CreateDirectory(last);
            new Dumper(new DumpOptions { RootPid = pid, ImagesDir = last, ShellJob = true }, Log.Null).Run();
            try { Spawn.Reap(pid); } catch (SyscallException) { }
            alive = false;
            var deadline = DateTime.UtcNow.AddSeconds(20);
            while (Directory.Exists($"/proc/{pid}"))
            {
                Assert.True(DateTime.UtcNow < deadline, $"PID {pid} still taken");
                Thread.Sleep(20);
            }
            long atDump = Count(dir);
            var tree = new Restorer(new RestoreOptions { ImagesDir = last, ShellJob = true, Detached = true }, Log.Null).Run();
            alive = true;
            Assert.Equal(pid, tree.RootPid);
            WaitFor(() => Count(dir) > atDump + 1000, "churning on after restore", pid);
        }
        finally
        {
            if (alive)
            {
                RawSyscall.TryCall(Sysno.kill, pid, SIGKILL);
                try { Spawn.Reap(pid); } catch (SyscallException) { }
            }
            Directory.Delete(dir, recursive: true);
        }
    }

    private static long Count(string dir)
    {
        try { return long.Parse(File.ReadAllText(Path.Combine(dir, "count")).Trim()); }
        catch (Exception e) when (e is IOException or FormatException) { return 0; }
    }

    private static void WaitFor(Func<bool> condition, string what, int pid)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (!condition())
        {
            Assert.True(Directory.Exists($"/proc/{pid}") && !File.ReadAllText($"/proc/{pid}/stat").Contains(") Z "), $"died waiting for {what}");
            Assert.True(DateTime.UtcNow < deadline, $"timed out waiting for {what}");
            Thread.Sleep(20);
        }
    }
}
