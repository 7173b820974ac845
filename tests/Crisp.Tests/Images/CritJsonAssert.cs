using System.Collections;
using System.Text.Json;
using Google.Protobuf;
using Google.Protobuf.Reflection;

namespace Crisp.Tests.Images;

/// <summary>Checks that crit's plain (`crit decode`) JSON of an entry holds the values we wrote, field by field.</summary>
internal static class CritJsonAssert
{
    public static void Equal(IMessage expected, JsonElement actual, string where)
    {
        Assert.Equal(JsonValueKind.Object, actual.ValueKind);
        var seen = new HashSet<string>();
        foreach (var field in expected.Descriptor.Fields.InFieldNumberOrder())
        {
            string at = $"{where}.{field.Name}";
            var value = field.Accessor.GetValue(expected);
            bool present = field.IsRepeated ? ((IList)value).Count > 0 : field.Accessor.HasValue(expected);
            if (!present)
            {
                Assert.False(actual.TryGetProperty(field.Name, out _), $"{at}: crit shows a field we did not set");
                continue;
            }
            Assert.True(actual.TryGetProperty(field.Name, out var got), $"{at}: missing in crit's output");
            seen.Add(field.Name);
            if (field.IsRepeated)
            {
                var items = (IList)value;
                Assert.Equal(items.Count, got.GetArrayLength());
                for (int i = 0; i < items.Count; i++)
                    Value(field, items[i]!, got[i], $"{at}[{i}]");
            }
            else
            {
                Value(field, value, got, at);
            }
        }
        foreach (var p in actual.EnumerateObject())
            Assert.True(seen.Contains(p.Name) || p.Name == "extra", $"{where}.{p.Name}: unexpected field in crit's output");
    }

    private static void Value(FieldDescriptor field, object value, JsonElement got, string at)
    {
        switch (field.FieldType)
        {
            case FieldType.Message:
                Equal((IMessage)value, got, at);
                break;
            case FieldType.Bytes:
                Assert.Equal(((ByteString)value).ToByteArray(), Convert.FromBase64String(got.GetString()!.Replace("\n", "")));
                break;
            case FieldType.Enum:
                Assert.Equal(field.EnumType.FindValueByNumber(Convert.ToInt32(value, System.Globalization.CultureInfo.InvariantCulture)).Name, got.GetString());
                break;
            case FieldType.Bool:
                Assert.Equal((bool)value, got.GetBoolean());
                break;
            case FieldType.String:
                Assert.Equal((string)value, got.GetString());
                break;
            default:
                Assert.True(Convert.ToDecimal(value, System.Globalization.CultureInfo.InvariantCulture) == got.GetDecimal(), $"{at}: wrote {value}, crit read {got}");
                break;
        }
    }
}
