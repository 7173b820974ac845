using System.Buffers.Binary;
using Crisp.Images.Proto;
using Crisp.Linux;
using static Crisp.Linux.SocketCalls;

namespace Crisp.Resources.Files.Sockets.Packet;

/// <summary>A packet socket's mmap'ed rx/tx rings as CRIU keeps them: packet_sock_entry.rx_ring/tx_ring hold the
/// geometry packet_diag reports, and the restored socket gets rings of that geometry (PACKET_RX_RING/PACKET_TX_RING
/// with a tpacket_req3, which the kernel reads as tpacket_req for TPACKET_V1/V2). Their contents are not kept.</summary>
public static class PacketRings
{
    private const int SOL_PACKET = 263, PACKET_RX_RING = 5, PACKET_TX_RING = 13;

    public static packet_ring? Entry(PacketRingDiag? d) => d is null ? null : new packet_ring
    {
        BlockSize = d.BlockSize,
        BlockNr = d.BlockNr,
        FrameSize = d.FrameSize,
        FrameNr = d.FrameNr,
        RetireTmo = d.RetireTmo,
        SizeofPriv = d.SizeofPriv,
        Features = d.Features,
    };

    /// <summary>Sets up the entry's rings on the new socket <paramref name="s"/> (its version already set).</summary>
    public static void Set(int s, packet_sock_entry e, string what)
    {
        Set(s, PACKET_RX_RING, e.RxRing, what, "rx");
        Set(s, PACKET_TX_RING, e.TxRing, what, "tx");
    }

    private static void Set(int s, int option, packet_ring? r, string what, string which)
    {
        if (r is null)
            return;
        var req = new byte[28];
        uint[] fields = [r.BlockSize, r.BlockNr, r.FrameSize, r.FrameNr, r.RetireTmo, r.SizeofPriv, r.Features];
        for (int i = 0; i < fields.Length; i++)
            BinaryPrimitives.WriteUInt32LittleEndian(req.AsSpan(i * 4), fields[i]);
        try
        {
            SocketCalls.Set(s, SOL_PACKET, option, req);
        }
        catch (SyscallException ex)
        {
            throw new CrispException($"{what}: its {which} ring ({r.BlockNr} blocks of {r.BlockSize}, {r.FrameNr} frames of {r.FrameSize}): {ex.Message}");
        }
    }
}
