using System.Buffers.Binary;
using Crisp.Images;
using Crisp.Images.Proto;
using Google.Protobuf;

namespace Crisp.Stats;

/// <summary>stats-dump and stats-restore as CRIU writes them: a service image (IMG_SERVICE magic, then
/// STATS), one stats_entry, named without ".img", in the work directory.</summary>
public static class StatsImage
{
    public const string DumpFile = "stats-dump", RestoreFile = "stats-restore";

    public static stats_entry ForDump(DumpCounters c) => new()
    {
        Dump = new dump_stats_entry
        {
            FreezingTime = Micros(c.Freezing),
            FrozenTime = Micros(c.Frozen),
            MemdumpTime = Micros(c.MemDump),
            MemwriteTime = Micros(c.MemWrite),
            PagesScanned = (ulong)c.PagesScanned,
            PagesSkippedParent = (ulong)c.PagesSkippedParent,
            PagesWritten = (ulong)c.PagesWritten,
            IrmapResolve = 0,
            PagesLazy = (ulong)c.PagesLazy,
            PagePipes = 0,
            PagePipeBufs = 0,
            ShpagesScanned = (ulong)c.ShPagesScanned,
            ShpagesSkippedParent = 0,
            ShpagesWritten = (ulong)c.ShPagesWritten,
        },
    };

    public static stats_entry ForRestore(RestoreCounters c) => new()
    {
        Restore = new restore_stats_entry
        {
            PagesCompared = (ulong)c.PagesCompared,
            PagesSkippedCow = (ulong)c.PagesSkippedCow,
            ForkingTime = Micros(c.Forking),
            RestoreTime = Micros(c.Restore),
            PagesRestored = (ulong)c.PagesRestored,
        },
    };

    /// <summary>Writes the stats image; private (0600) unless <paramref name="mode"/> says otherwise.</summary>
    public static void Write(string path, stats_entry entry, UnixFileMode? mode = null)
    {
        byte[] body = entry.ToByteArray();
        var buf = new byte[12 + body.Length];
        BinaryPrimitives.WriteUInt32LittleEndian(buf, ImageMagic.ImgService);
        BinaryPrimitives.WriteUInt32LittleEndian(buf.AsSpan(4), ImageMagic.Stats);
        BinaryPrimitives.WriteUInt32LittleEndian(buf.AsSpan(8), (uint)body.Length);
        body.CopyTo(buf, 12);
        Security.PrivateFile.WriteAllBytes(path, buf, mode ?? Security.ImageModes.Private.File);
    }

    public static stats_entry Read(string path)
    {
        byte[] buf = File.ReadAllBytes(path);
        if (buf.Length < 12 || BinaryPrimitives.ReadUInt32LittleEndian(buf) != ImageMagic.ImgService
            || BinaryPrimitives.ReadUInt32LittleEndian(buf.AsSpan(4)) != ImageMagic.Stats)
            throw new ImageFormatException(path, 0, "not a stats image");
        int size = (int)BinaryPrimitives.ReadUInt32LittleEndian(buf.AsSpan(8));
        if (size > buf.Length - 12)
            throw new ImageFormatException(path, 8, "truncated stats entry");
        return stats_entry.Parser.ParseFrom(buf, 12, size);
    }

    /// <summary>CRIU's --display-stats text.</summary>
    public static string Display(stats_entry e)
    {
        var w = new StringWriter();
        if (e.Dump is { } d)
        {
            w.WriteLine("Displaying dump stats:");
            w.WriteLine($"Freezing time: {d.FreezingTime} us");
            w.WriteLine($"Frozen time: {d.FrozenTime} us");
            w.WriteLine($"Memory dump time: {d.MemdumpTime} us");
            w.WriteLine($"Memory write time: {d.MemwriteTime} us");
            if (d.IrmapResolve != 0)
                w.WriteLine($"IRMAP resolve time: {d.IrmapResolve} us");
            w.WriteLine($"Memory pages scanned: {d.PagesScanned} (0x{d.PagesScanned:x})");
            w.WriteLine($"Memory pages skipped from parent: {d.PagesSkippedParent} (0x{d.PagesSkippedParent:x})");
            w.WriteLine($"Memory pages written: {d.PagesWritten} (0x{d.PagesWritten:x})");
            w.WriteLine($"Lazy memory pages: {d.PagesLazy} (0x{d.PagesLazy:x})");
        }
        if (e.Restore is { } r)
        {
            w.WriteLine("Displaying restore stats:");
            w.WriteLine($"Pages compared: {r.PagesCompared} (0x{r.PagesCompared:x})");
            w.WriteLine($"Pages skipped COW: {r.PagesSkippedCow} (0x{r.PagesSkippedCow:x})");
            if (r.HasPagesRestored)
                w.WriteLine($"Pages restored: {r.PagesRestored} (0x{r.PagesRestored:x})");
            w.WriteLine($"Restore time: {r.RestoreTime} us");
            w.WriteLine($"Forking time: {r.ForkingTime} us");
        }
        return w.ToString();
    }

    private static uint Micros(TimeSpan t) => (uint)Math.Clamp(t.Ticks / 10, 0, uint.MaxValue);
}
