using System.Text.RegularExpressions;

namespace Crisp.Resources.Net;

/// <summary>Where the outside end of a restored veth goes, as CRIU's `--veth-pair IN=OUT[@BRIDGE]` and
/// `--external veth[IN]:OUT[@BRIDGE]` say: the peer of the namespace's link IN is made in crisp's own network
/// namespace under the name OUT and, with a bridge, enslaved to it and brought up.</summary>
public sealed partial record VethPair(string Inside, string Outside, string? Bridge)
{
    /// <summary>IN=OUT[@BRIDGE] (--veth-pair).</summary>
    public static VethPair ParsePair(string value) =>
        FromMatch(PairPattern().Match(value)) ?? throw new CrispException($"--veth-pair {value}: expected IN=OUT[@BRIDGE]");

    /// <summary>veth[IN]:OUT[@BRIDGE] (--external); null for other kinds of external.</summary>
    public static VethPair? ParseExternal(string value) =>
        !value.StartsWith("veth[", StringComparison.Ordinal) ? null
        : FromMatch(ExternalPattern().Match(value)) ?? throw new CrispException($"--external {value}: expected veth[IN]:OUT[@BRIDGE]");

    private static VethPair? FromMatch(Match m) => !m.Success ? null
        : new VethPair(m.Groups[1].Value, m.Groups[2].Value, m.Groups[3].Success ? m.Groups[3].Value : null);

    // Link names: 1-15 bytes, no '/', ':', '=', '@' or blanks (the kernel's dev_valid_name, and our separators).
    [GeneratedRegex(@"^([^\s/:=@\[\]]{1,15})=([^\s/:=@]{1,15})(?:@([^\s/:=@]{1,15}))?$")]
    private static partial Regex PairPattern();

    [GeneratedRegex(@"^veth\[([^\s/:=@\[\]]{1,15})\]:([^\s/:=@]{1,15})(?:@([^\s/:=@]{1,15}))?$")]
    private static partial Regex ExternalPattern();
}
