using System.Collections;
using System.Globalization;
using System.Text.Json;
using Crisp.Images.Proto;
using Google.Protobuf;
using Google.Protobuf.Reflection;

namespace Crisp.Images.Show;

/// <summary>
/// One protobuf entry as crit's pb2dict shapes it, both ways: present fields in field-number order, enums by
/// name, bytes in base64 (quoted-printable for unix socket names); with <c>pretty</c> the (criu) options turn
/// numbers into hex, flag names, dict names, "major:minor" and IP addresses. Every field crisp's schemas know
/// is shown (current CRIU's shape, e.g. inventory plugins_entry).
/// </summary>
internal static class EntryJson
{
    public static PyJson.Obj ToJson(IMessage message, bool pretty, bool hex = false)
    {
        var obj = new PyJson.Obj();
        foreach (var field in message.Descriptor.Fields.InFieldNumberOrder())
        {
            var value = field.Accessor.GetValue(message);
            if (field.IsRepeated)
            {
                var items = (IList)value;
                if (items.Count == 0)
                    continue;
                var list = new List<object>(items.Count);
                if (pretty && Options(field)?.Ipadd == true)
                    list.Add(CritFormat.Address(items.Cast<uint>().ToList()));
                else
                    foreach (var item in items)
                        list.Add(Value(field, item!, pretty, hex));
                obj.Add(field.Name, list);
            }
            else if (field.Accessor.HasValue(message))
            {
                obj.Add(field.Name, Value(field, value, pretty, hex));
            }
        }
        return obj;
    }

    /// <summary>Fills <paramref name="message"/> from crit-shaped JSON (plain or pretty); "extra" is the caller's.
    /// A field crisp's schema does not know is an error, so nothing is dropped silently.</summary>
    public static void FromJson(JsonElement json, IMessage message, string where)
    {
        if (json.ValueKind != JsonValueKind.Object)
            throw Bad(where, $"expected an object for {message.Descriptor.Name}, found {json.ValueKind}");
        foreach (var p in json.EnumerateObject())
        {
            if (p.Name == "extra")
                continue;
            string at = $"{where}.{p.Name}";
            var field = message.Descriptor.FindFieldByName(p.Name)
                ?? throw Bad(at, $"no such field in {message.Descriptor.Name}");
            if (field.IsRepeated)
            {
                if (p.Value.ValueKind != JsonValueKind.Array)
                    throw Bad(at, "expected a list");
                var list = (IList)field.Accessor.GetValue(message);
                var items = p.Value.EnumerateArray().ToList();
                if (Options(field)?.Ipadd == true && items.Count > 0 && items[0].ValueKind == JsonValueKind.String)
                {
                    foreach (uint w in Convert(at, () => CritFormat.Unaddress(items[0].GetString()!)))
                        list.Add(w);
                    continue;
                }
                for (int i = 0; i < items.Count; i++)
                    list.Add(FromValue(field, items[i], $"{at}[{i}]"));
            }
            else
            {
                field.Accessor.SetValue(message, FromValue(field, p.Value, at));
            }
        }
    }

    private static CRIU_Opts? Options(FieldDescriptor field) => field.GetOptions()?.GetExtension(OptsExtensions.Criu);

    private static object Value(FieldDescriptor field, object value, bool pretty, bool hex)
    {
        var opts = Options(field);
        hex = hex || (opts?.Hex ?? false);
        switch (field.FieldType)
        {
            case FieldType.Message:
            case FieldType.Group:
                return ToJson((IMessage)value, pretty, hex);
            case FieldType.Bytes:
                var bytes = ((ByteString)value).Span;
                return opts?.Conv == "unix_name" ? CritFormat.QuotedPrintable(bytes) : CritFormat.Base64Lines(bytes);
            case FieldType.Enum:
                int number = System.Convert.ToInt32(value, CultureInfo.InvariantCulture);
                return field.EnumType.FindValueByNumber(number)?.Name ?? (object)(Int128)number;
            case FieldType.Bool:
                return (bool)value;
            case FieldType.String:
                return (string)value;
        }
        Int128 n = value switch
        {
            int i => i,
            uint u => u,
            long l => l,
            ulong ul => ul,
            _ => throw new ArgumentException($"{field.FullName}: unsupported type {field.FieldType}"),
        };
        if (!pretty)
            return n;
        if (hex)
            return CritFormat.Hex(n);
        if (opts is null)
            return n;
        if (opts.Dev)
            return CritFormat.Dev(n, opts.Odev);
        if (opts.HasFlags && opts.Flags.Length > 0)
            return CritFormat.Flags(opts.Flags, n);
        if (opts.HasDict && opts.Dict.Length > 0)
            return CritFormat.Dict(opts.Dict, field.Name, n);
        return n;
    }

    private static object FromValue(FieldDescriptor field, JsonElement json, string at)
    {
        var opts = Options(field);
        switch (field.FieldType)
        {
            case FieldType.Message:
            case FieldType.Group:
                var message = field.MessageType.Parser.ParseFrom(ByteString.Empty);
                FromJson(json, message, at);
                return message;
            case FieldType.Bytes:
                string text = Text(json, at);
                return ByteString.CopyFrom(Convert(at, () => opts?.Conv == "unix_name" ? CritFormat.FromQuotedPrintable(text) : CritFormat.FromBase64Lines(text)));
            case FieldType.Enum:
                if (json.ValueKind == JsonValueKind.Number && json.TryGetInt32(out int number))
                    return number;
                string name = Text(json, at);
                return field.EnumType.FindValueByName(name)?.Number
                    ?? throw Bad(at, $"'{name}' is not one of {field.EnumType.Name}'s names ({string.Join(", ", field.EnumType.Values.Select(v => v.Name))})");
            case FieldType.Bool:
                return json.ValueKind switch
                {
                    JsonValueKind.True => true,
                    JsonValueKind.False => false,
                    _ => throw Bad(at, "expected true or false"),
                };
            case FieldType.String:
                return Text(json, at);
        }
        Int128 n = json.ValueKind switch
        {
            JsonValueKind.Number => Convert(at, () => CritFormat.ParseInt(json.GetRawText())),
            JsonValueKind.String => Convert(at, () =>
            {
                string s = json.GetString()!;
                if (opts is { Dev: true })
                    return CritFormat.Undev(s, opts.Odev);
                if (opts is { HasFlags: true } && opts.Flags.Length > 0)
                    return CritFormat.Unflags(opts.Flags, s);
                if (opts is { HasDict: true } && opts.Dict.Length > 0)
                    return CritFormat.Undict(opts.Dict, field.Name, s);
                return CritFormat.ParseInt(s);
            }),
            _ => throw Bad(at, $"expected a number, found {json.ValueKind}"),
        };
        try
        {
            return field.FieldType switch
            {
                FieldType.Int32 or FieldType.SInt32 or FieldType.SFixed32 => (object)checked((int)n),
                FieldType.UInt32 or FieldType.Fixed32 => checked((uint)n),
                FieldType.Int64 or FieldType.SInt64 or FieldType.SFixed64 => checked((long)n),
                FieldType.UInt64 or FieldType.Fixed64 => checked((ulong)n),
                _ => throw Bad(at, $"unsupported type {field.FieldType}"),
            };
        }
        catch (OverflowException)
        {
            throw Bad(at, $"{n} does not fit a {field.FieldType.ToString().ToLowerInvariant()}");
        }
    }

    private static string Text(JsonElement json, string at) =>
        json.ValueKind == JsonValueKind.String ? json.GetString()! : throw Bad(at, $"expected a string, found {json.ValueKind}");

    private static T Convert<T>(string at, Func<T> convert)
    {
        try
        {
            return convert();
        }
        catch (Exception e) when (e is FormatException or OverflowException)
        {
            throw Bad(at, e.Message);
        }
    }

    internal static CrispException Bad(string at, string problem) => new($"{at}: {problem}");
}
