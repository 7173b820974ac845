using System.Globalization;
using System.Text;

namespace Crisp.Images.Show;

/// <summary>
/// A small JSON tree serialized exactly like Python's json.dump: with indent=4 (crit show, decode --pretty)
/// or on one line with ", " and ": " (crit decode), ensure_ascii in both.
/// </summary>
internal static class PyJson
{
    /// <summary>Object with keys in insertion order (crit uses OrderedDict in pretty mode).</summary>
    internal sealed class Obj : List<KeyValuePair<string, object>>
    {
        public void Add(string key, object value) => Add(new KeyValuePair<string, object>(key, value));
    }

    public static string Serialize(object value, bool indent = true)
    {
        var sb = new StringBuilder();
        Write(sb, value, indent ? 0 : -1);
        return sb.ToString();
    }

    /// <summary><paramref name="level"/> is the indent depth, or -1 for Python's one-line form.</summary>
    private static void Write(StringBuilder sb, object value, int level)
    {
        switch (value)
        {
            case string s:
                WriteString(sb, s);
                break;
            case bool b:
                sb.Append(b ? "true" : "false");
                break;
            case Int128 i:
                sb.Append(i.ToString(CultureInfo.InvariantCulture));
                break;
            case Obj o:
                if (o.Count == 0)
                {
                    sb.Append("{}");
                    break;
                }
                sb.Append('{');
                for (int i = 0; i < o.Count; i++)
                {
                    Separate(sb, i, level + 1);
                    WriteString(sb, o[i].Key);
                    sb.Append(": ");
                    Write(sb, o[i].Value, level < 0 ? -1 : level + 1);
                }
                Close(sb, level, '}');
                break;
            case List<object> l:
                if (l.Count == 0)
                {
                    sb.Append("[]");
                    break;
                }
                sb.Append('[');
                for (int i = 0; i < l.Count; i++)
                {
                    Separate(sb, i, level + 1);
                    Write(sb, l[i], level < 0 ? -1 : level + 1);
                }
                Close(sb, level, ']');
                break;
            default:
                throw new ArgumentException($"unsupported JSON value {value.GetType()}");
        }
    }

    private static void Separate(StringBuilder sb, int index, int level)
    {
        if (level <= 0)
            sb.Append(index == 0 ? "" : ", ");
        else
            sb.Append(index == 0 ? "\n" : ",\n").Append(' ', 4 * level);
    }

    private static void Close(StringBuilder sb, int level, char bracket)
    {
        if (level >= 0)
            sb.Append('\n').Append(' ', 4 * level);
        sb.Append(bracket);
    }

    private static void WriteString(StringBuilder sb, string s)
    {
        sb.Append('"');
        foreach (char c in s)
        {
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                case '\b': sb.Append("\\b"); break;
                case '\f': sb.Append("\\f"); break;
                default:
                    if (c < 0x20 || c > 0x7e)
                        sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                    else
                        sb.Append(c);
                    break;
            }
        }
        sb.Append('"');
    }
}
