namespace Crisp.Resources.Ipc;

/// <summary>Restore-wide IPC state: the namespace's objects and the segments' sizes the memory stage attaches by.</summary>
public sealed class IpcRestoreState
{
    public IpcRestore.State Namespace { get; } = new();
    public ShmAttachments Attachments { get; } = new();
}
