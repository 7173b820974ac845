namespace Crisp.Plugins.Native;

/// <summary>CRIU's hook numbers (criu-plugin.h CR_PLUGIN_HOOK__*): the index of each hook in a plugin
/// descriptor's hooks[] array.</summary>
internal enum PluginHook
{
    DumpUnixSocket = 0,
    RestoreUnixSocket = 1,
    DumpExtFile = 2,
    RestoreExtFile = 3,
    DumpExtMount = 4,
    RestoreExtMount = 5,
    DumpExtLink = 6,
    HandleDeviceVma = 7,
    UpdateVmaMap = 8,
    ResumeDevicesLate = 9,
    PauseDevices = 10,
    CheckpointDevices = 11,
    PostForking = 12,
    RestoreInit = 13,
    DumpDevicesLate = 14,
    Count = 15,
}
