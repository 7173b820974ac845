namespace Crisp.Tests.Runtimes;

/// <summary>runc and Podman change the host's own mount table while they work (Podman mounts its overlay storage,
/// runc binds the rootfs for a restore), and so does `ip netns add/del` (the migration tests' "two hosts"), which
/// every other test that compares a host task's mountinfo before and after would see: these tests run alone.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ContainerEngines
{
    public const string Name = "ContainerEngines";
}
