using Crisp.Resources.Files.Sockets.Inet;

namespace Crisp.Check;

/// <summary>The nftables network lock of --tcp-established (CRIU's network_lock_nftables): nft is there and
/// the kernel takes a table. Not required: only dumps of established TCP connections need it.</summary>
public sealed class NetworkLockProbe : IFeatureProbe
{
    public string Name => "network_lock_nftables";
    public string? CriuFeature => "network_lock_nftables";
    public bool Required => false;

    public ProbeResult Probe() => NetworkLock.Unavailable() is { } why
        ? ProbeResult.Missing(why)
        : ProbeResult.Supported("nft makes and removes an inet table");
}
