using Crisp.Images;
using Crisp.Images.Show;
using Google.Protobuf;
using Google.Protobuf.Reflection;
using Xunit;

namespace Crisp.Tests.Images;

/// <summary>Every required field of CRIU's schema set in every entry of a dump. crit and crisp read a message that
/// lacks one; CRIU's protobuf-c refuses it ("Failed unpacking object"), so upstream CRIU could not restore it.</summary>
public static class RequiredFields
{
    public static void AssertAllSet(string dir)
    {
        var missing = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var path in Directory.EnumerateFiles(dir, "*.img").Order(StringComparer.Ordinal))
        {
            if (Path.GetFileName(path).StartsWith("pages-", StringComparison.Ordinal) || Path.GetFileName(path).StartsWith("tmpfs-dev-", StringComparison.Ordinal))
                continue;   // raw page data, a tmpfs's tar: no entries
            var kind = ImageJson.DetectKind(path);
            if (kind.IsRaw)
                continue;
            using var reader = ImageReader.Open(path, kind);
            int n = 0;
            if (kind.Head is { } head && reader.Read(head) is { } h)
                Check(missing, path, n++, h);
            while (reader.Read(kind.Entry!) is { } entry)
            {
                Check(missing, path, n++, entry);
                if (kind.Extra != ExtraPayload.None)
                    break;   // raw payload follows: the first entry stands for the rest
            }
        }
        Assert.True(missing.Count == 0, $"required fields not set (CRIU cannot unpack these entries): {string.Join("; ", missing)}");
    }

    private static void Check(SortedSet<string> missing, string path, int index, IMessage message)
    {
        if (!message.IsInitialized())
            missing.Add($"{Path.GetFileName(path)} entry {index}: {Missing(message, "")}");
    }

    /// <summary>The path of the first required field without a value, nested messages included.</summary>
    private static string Missing(IMessage m, string prefix)
    {
        foreach (var f in m.Descriptor.Fields.InFieldNumberOrder())
        {
            var value = f.Accessor.GetValue(m);
            if (f.IsRequired && !f.Accessor.HasValue(m))
                return prefix + f.Name;
            if (f.FieldType != FieldType.Message)
                continue;
            if (f.IsRepeated)
            {
                int i = 0;
                foreach (var item in (System.Collections.IEnumerable)value)
                {
                    if (item is IMessage im && !im.IsInitialized())
                        return Missing(im, $"{prefix}{f.Name}[{i}].");
                    i++;
                }
            }
            else if (value is IMessage sub && !sub.IsInitialized())
                return Missing(sub, $"{prefix}{f.Name}.");
        }
        return prefix + "?";
    }
}
