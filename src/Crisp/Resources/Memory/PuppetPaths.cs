using System.Text;
using Crisp.Linux;
using Crisp.Restore;

namespace Crisp.Resources.Memory;

/// <summary>openat inside a puppet, the path travelling on its data page.</summary>
internal static class PuppetPaths
{
    public static int Open(RestoreTask task, string path, int flags)
    {
        ulong at = task.Puppet.Remote.PutOnScratch(Encoding.UTF8.GetBytes(path + "\0"));
        return (int)task.Call($"openat({path})", Sysno.openat, FileIo.AT_FDCWD, (long)at, flags | FileIo.O_CLOEXEC);
    }
}
