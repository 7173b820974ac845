using Crisp.Dump;
using Crisp.Restore;
using Crisp.Tests.Integration;
using Crisp.Tests.Support;

namespace Crisp.Tests.Resources.Files.Pipes;

/// <summary>Pipe sizes set with F_SETPIPE_SZ — an empty 1 MiB pipe, a 256 KiB one holding bytes, one shrunk to a
/// page — come back exactly after two cycles (tests/workloads/pipe_size.c checks them itself).</summary>
public class PipeSizeTests
{
    [RootFact]
    public void PipeSizesComeBackLargerAndSmallerThanTheDefault()
    {
        using var w = new DirWorkload("crisp-pipesize-");
        w.Start(Support.Workloads.Build("pipe_size"), [], newSession: true);
        w.WaitReady("pipe_size");
        RestoredTree? tree = null;
        for (int cycle = 0; cycle < 2; cycle++)
        {
            string images = w.NewImagesDir($"images{cycle}");
            w.Dump(new DumpOptions { RootPid = w.Pid, ImagesDir = images });
            Live.WaitPidsFree([w.Pid]);
            tree = w.Restore(new RestoreOptions { ImagesDir = images, Detached = true });
        }
        w.SignalAndExpectPass(tree!);
    }
}
