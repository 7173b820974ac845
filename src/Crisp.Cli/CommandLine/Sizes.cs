using System.Globalization;

namespace Crisp.Cli.CommandLine;

/// <summary>Sizes as CRIU's options take them: bytes, or a number with K, M or G (powers of 1024).</summary>
public static class Sizes
{
    public static long Parse(string text, string option)
    {
        string t = text.Trim();
        long unit = 1;
        if (t.Length > 0 && char.ToUpperInvariant(t[^1]) is 'K' or 'M' or 'G' && t[^1] is var u)
        {
            unit = char.ToUpperInvariant(u) switch { 'K' => 1L << 10, 'M' => 1L << 20, _ => 1L << 30 };
            t = t[..^1];
        }
        if (!long.TryParse(t, NumberStyles.None, CultureInfo.InvariantCulture, out long n) || n > long.MaxValue / unit)
            throw new UsageException($"{option}: bad size '{text}'");
        return n * unit;
    }
}
