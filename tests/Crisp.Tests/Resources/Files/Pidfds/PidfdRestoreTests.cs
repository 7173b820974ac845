using Crisp.Images;
using Crisp.Images.Proto;
using Crisp.Tests.Integration;
using Crisp.Tests.Support;
using Xunit.Abstractions;

namespace Crisp.Tests.Resources.Files.Pidfds;

/// <summary>pidfd_state: pidfds of the tree's tasks (the child, the task itself, one PIDFD_NONBLOCK) and of a process
/// that exited, in CRIU 4's PIDFD form. After restore the workload checks what each names, signals its child through
/// one and waits for it through it. A pidfd of a process outside the tree is refused by name.</summary>
public class PidfdRestoreTests(ITestOutputHelper output)
{
    [RootFact]
    public void PidfdsOfTreeTasksAndOfADeadProcessWorkAfterRestore() =>
        WorkloadRoundTrip.ExpectPass(output, "pidfd_state", [], (images, pids) =>
        {
            var pidfds = ImageDirectory.Open(images).ReadAll<file_entry>(ImageFile.Files).Where(f => f.Type == fd_types.Pidfd)
                .Select(f => f.Pidfd).ToList();
            // child (twice), itself, the dead one (fds 6 and 7 share it), the child's of its parent.
            Assert.Equal(5, pidfds.Count);
            Assert.Equal(2, pidfds.Count(p => p.Nspid == pids[1]));
            Assert.Single(pidfds, p => p.Nspid == -1);
        });

    [RootFact]
    public void APidfdOfAProcessOutsideTheTreeIsRefused() =>
        WorkloadRoundTrip.ExpectRefused("pidfd_state", ["outside"], "fd 8: pidfd of process {testpid}, which is not a live task of the dumped tree");
}
