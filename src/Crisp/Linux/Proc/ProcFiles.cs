using System.Buffers;
using System.Globalization;
using System.Text;

namespace Crisp.Linux.Proc;

/// <summary>Shared helpers for /proc text (paths come from <see cref="Procfs"/>).</summary>
public static class ProcFiles
{
    /// <summary>A /proc file as one string. /proc files stat as empty, so File.ReadAllText grows a StringBuilder
    /// through a StreamReader — several times the text in garbage for every smaps, status or fdinfo read of a
    /// dump. Here: large reads into one pooled buffer, one decode.</summary>
    public static string ReadText(string path)
    {
        using var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read);
        byte[] buffer = ArrayPool<byte>.Shared.Rent(16 << 10);
        try
        {
            int length = 0;
            while (true)
            {
                if (length == buffer.Length)
                {
                    byte[] larger = ArrayPool<byte>.Shared.Rent(buffer.Length * 2);
                    buffer.AsSpan(0, length).CopyTo(larger);
                    ArrayPool<byte>.Shared.Return(buffer);
                    buffer = larger;
                }
                int n = RandomAccess.Read(handle, buffer.AsSpan(length), length);
                if (n == 0)
                    return Encoding.UTF8.GetString(buffer, 0, length);
                length += n;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    public static ulong Hex(ReadOnlySpan<char> s) => ulong.Parse(s, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture);

    public static long Dec(ReadOnlySpan<char> s) => long.Parse(s, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture);

    /// <summary>Parses an unsigned decimal that may exceed long.MaxValue (e.g. rsslim).</summary>
    public static ulong UDec(ReadOnlySpan<char> s) => ulong.Parse(s, NumberStyles.None, CultureInfo.InvariantCulture);

    public static ulong Octal(ReadOnlySpan<char> s)
    {
        ulong v = 0;
        foreach (char c in s)
        {
            if (c < '0' || c > '7')
                throw new FormatException($"not octal: '{s}'");
            v = v * 8 + (ulong)(c - '0');
        }
        return v;
    }

    /// <summary>Undoes the kernel's mangle() escapes (\040 space, \011 tab, \012 newline, \134 backslash):
    /// any backslash followed by three octal digits.</summary>
    public static string DecodeOctalEscapes(string s)
    {
        if (!s.Contains('\\'))
            return s;
        var bytes = new List<byte>(s.Length);
        var utf8 = Encoding.UTF8.GetBytes(s);
        for (int i = 0; i < utf8.Length; i++)
        {
            if (utf8[i] == '\\' && i + 3 < utf8.Length && IsOct(utf8[i + 1]) && IsOct(utf8[i + 2]) && IsOct(utf8[i + 3]))
            {
                bytes.Add((byte)((utf8[i + 1] - '0') * 64 + (utf8[i + 2] - '0') * 8 + (utf8[i + 3] - '0')));
                i += 3;
            }
            else
                bytes.Add(utf8[i]);
        }
        return Encoding.UTF8.GetString(bytes.ToArray());

        static bool IsOct(byte b) => b >= '0' && b <= '7';
    }

    /// <summary>Splits "Key:   value" at the first colon; value trimmed.</summary>
    public static bool SplitKeyValue(string line, out string key, out string value)
    {
        int colon = line.IndexOf(':');
        if (colon < 0)
        {
            key = line.Trim();
            value = "";
            return false;
        }
        key = line[..colon].Trim();
        value = line[(colon + 1)..].Trim();
        return true;
    }

    public static IEnumerable<string> Lines(string text)
        => text.Split('\n', StringSplitOptions.RemoveEmptyEntries);
}
