using System.Buffers.Binary;

namespace Crisp.Images.PageServer;

/// <summary>CRIU's page server wire format (criu/page-xfer.c): every command is a struct page_server_iov — u32 cmd
/// (low 16 bits the command, high 16 bits pagemap flags for ADD_F), 4 bytes of padding, u64 nr_pages, u64 vaddr,
/// u64 dst_id — 32 bytes, little-endian, and PE_PRESENT pages follow their ADD_F command as raw bytes.
/// dst_id names the pagemap: id &lt;&lt; 8 | type (1 a task's pagemap-PID.img, 2 pagemap-shmem-SHMID.img).</summary>
public readonly record struct PageServerIov(uint Cmd, ulong NrPages, ulong Vaddr, ulong DstId)
{
    public const int Size = 32;

    public const uint Add = 1, Hole = 2, Open = 3, Open2 = 4, Parent = 5, AddF = 6, Get = 7, Close = 0x1023, ForceClose = 0x1024;
    public const ulong TypePid = 1, TypeShmem = 2;

    public uint Command => Cmd & 0xffff;
    public uint Flags => Cmd >> 16;

    public static uint WithFlags(uint command, PagemapFlags flags) => (uint)flags << 16 | command;

    /// <summary>The dst_id of a pagemap image (CRIU's encode_pm).</summary>
    public static ulong DstIdOf(ImageFile map) =>
        map.Kind == ImageKind.Pagemap ? (ulong)map.Id!.Value << 8 | TypePid
        : map.Kind == ImageKind.ShmemPagemap ? (ulong)map.Id!.Value << 8 | TypeShmem
        : throw new ArgumentException($"{map.FileName} is not sent to a page server");

    /// <summary>The pagemap image a dst_id names (CRIU's decode_pm, with the type numbers older CRIUs sent); null when unknown.</summary>
    public static ImageFile? MapOf(ulong dstId)
    {
        long id = (long)(dstId >> 8);
        return (dstId & 0xff) switch
        {
            1 or 10 or 11 or 16 or 17 => ImageFile.Pagemap(id),
            2 or 27 or 28 or 29 or 32 or 33 or 34 => ImageFile.ShmemPagemap(id),
            _ => null,
        };
    }

    public void Write(Span<byte> b)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(b, Cmd);
        BinaryPrimitives.WriteUInt32LittleEndian(b[4..], 0);
        BinaryPrimitives.WriteUInt64LittleEndian(b[8..], NrPages);
        BinaryPrimitives.WriteUInt64LittleEndian(b[16..], Vaddr);
        BinaryPrimitives.WriteUInt64LittleEndian(b[24..], DstId);
    }

    public static PageServerIov Read(ReadOnlySpan<byte> b) => new(BinaryPrimitives.ReadUInt32LittleEndian(b),
        BinaryPrimitives.ReadUInt64LittleEndian(b[8..]), BinaryPrimitives.ReadUInt64LittleEndian(b[16..]), BinaryPrimitives.ReadUInt64LittleEndian(b[24..]));
}
