using Crisp.Images;
using Crisp.Images.Proto;
using Crisp.Tests.Integration;
using Crisp.Tests.Support;
using Xunit.Abstractions;

namespace Crisp.Tests.Resources.Sockets;

/// <summary>unix_pending: stream and seqpacket listeners holding connections not yet accepted, from the
/// task itself and from its child. After restore the workload accepts them: same order, each carrying
/// its client's data, replies reaching the right client. What cannot come back (data already sent into
/// a pending connection, a pending connection whose client closed, a TCP listener's pending connection) is
/// refused by name.</summary>
public class UnixPendingConnectionTests(ITestOutputHelper output)
{
    [RootFact]
    public void ConnectionsNotYetAcceptedAreAcceptedAfterRestoreInOrder() =>
        WorkloadRoundTrip.ExpectPass(output, "unix_pending", ["ok"], (images, _) =>
        {
            // As CRIU writes them: a pending client's peer is its listener, which has none.
            var usk = ImageDirectory.Open(images).ReadAll<file_entry>(ImageFile.Files).Where(f => f.Usk is not null).Select(f => f.Usk).ToList();
            var listeners = usk.Where(u => u.State == 10).ToDictionary(u => u.Ino);
            Assert.Equal(2, listeners.Count);
            Assert.Equal(4, usk.Count(u => u.State == 1 && listeners.ContainsKey(u.Peer)));
        });

    [RootTheory]
    [InlineData("sent", "has sent data on a connection unix socket")]
    [InlineData("closed", "has a connection not yet accepted whose client has closed")]
    [InlineData("tcp", "connection(s) not yet accepted: no kernel call puts a connection back into a listener's accept queue")]
    public void APendingConnectionThatCannotComeBackIsRefused(string mode, string expected) =>
        WorkloadRoundTrip.ExpectRefused("unix_pending", [mode], expected);
}
