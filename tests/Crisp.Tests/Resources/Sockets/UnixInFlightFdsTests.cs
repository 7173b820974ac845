using Crisp.Images.Proto;
using Crisp.Tests.Integration;
using Crisp.Tests.Support;
using Xunit.Abstractions;

namespace Crisp.Tests.Resources.Sockets;

/// <summary>unix_scm: fds queued in unix sockets with SCM_RIGHTS and closed by their sender (a file at an
/// offset, a pipe end, an eventfd the task also holds, a socket with data queued in it, a memfd, a
/// datagram pair known only in flight). After restore the workload receives each message and checks the
/// files it carries: contents, offsets, and sharing with what the task holds.</summary>
public class UnixInFlightFdsTests(ITestOutputHelper output)
{
    [RootFact]
    public void FdsQueuedInUnixSocketsArriveAfterRestore() =>
        WorkloadRoundTrip.ExpectPass(output, "unix_scm", [], (images, _) =>
        {
            // CRIU 4's form: each packet lists the file ids of its fds, every one of them in files.img.
            var img = Crisp.Images.ImageDirectory.Open(images);
            var ids = img.ReadAll<file_entry>(Crisp.Images.ImageFile.Files).Select(f => f.Id).ToHashSet();
            var rights = new List<scm_entry>();
            using (var r = img.OpenReader(Crisp.Images.ImageFile.SkQueues))
                while (r.Read<sk_packet_entry>() is { } p)
                {
                    rights.AddRange(p.Scm);
                    r.ReadExtra(p.Length);
                }
            Assert.Equal(6, rights.Count);
            Assert.All(rights, s => Assert.Equal(1u, s.Type));
            Assert.Equal(8, rights.Sum(s => s.Rights.Count));
            Assert.All(rights.SelectMany(s => s.Rights), id => Assert.Contains(id, ids));
        });
}
