using Crisp.Dump;
using Crisp.Tests.Integration;
using Crisp.Tests.Support;
using Xunit.Abstractions;

namespace Crisp.Tests.Resources.Files;

/// <summary>Files whose names a restore cannot simply open or bind in order: a task's own /proc/self/status and
/// its child's /proc/CHILD/stat (opened once the tree exists), and a unix socket whose file was removed and
/// whose path a FIFO took since (bound with the FIFO moved aside, then the FIFO put back). After two kill +
/// restore cycles the workload reads its own and its child's /proc files, reaches the socket through a datagram
/// socket connected to it, and finds the FIFO at the path with its unread data.</summary>
public class NamesTakenTests(ITestOutputHelper output)
{
    private static readonly StateAllowList ProcInodes = StateAllowList.Default.With(
        new StateAllowList.Rule(@"fd/[34]", "ino", "procfs numbers the files of each task anew: a restored task's /proc files are new inodes"));

    [RootFact]
    public void ProcFilesOfTheTreeAndASocketPathTakenByAFifoComeBack()
    {
        string exe = Support.Workloads.Build("names_taken");
        using var dir = new Live.TempDir();
        string names = Directory.CreateDirectory(Path.Combine(dir.Path, "names")).FullName;
        var w = Workload.Start(exe, ["names_taken", names], dir.Path);
        var words = w.WaitReady("names_taken's ready line", p => p.Length >= 3);
        int pid = w.Pid, child = int.Parse(words[2]);
        try
        {
            Live.Cycle(output, new DumpOptions { RootPid = pid, ImagesDir = Path.Combine(dir.Path, "c1") }, [pid, child], stateAllow: ProcInodes);
            Assert.False(File.Exists(Path.Combine(names, "s.crisp-sk-ghost")), "the FIFO was put back");
            var tree = Live.Cycle(output, new DumpOptions { RootPid = pid, ImagesDir = Path.Combine(dir.Path, "c2") }, [pid, child], stateAllow: ProcInodes);
            Live.SignalAndExpectPass(pid, dir.Path, () => Live.ExitCodeWithin(tree));
        }
        finally
        {
            Live.KillAll([pid, child], pid);
        }
    }
}
