using System.Text;
using Crisp.Linux;
using Crisp.Restore;

namespace Crisp.Resources.Memory;

/// <summary>openat inside a puppet, the path travelling on its data page.</summary>
internal static class PuppetPaths
{
    public static int Open(RestoreTask task, string path, int flags) => Mounts.MountNamespace.OpenInPuppet(task, path, flags);
}
