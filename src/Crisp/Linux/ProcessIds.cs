using System.Runtime.InteropServices;

namespace Crisp.Linux;

/// <summary>getpid/gettid/getuid/geteuid.</summary>
public static partial class ProcessIds
{
    [LibraryImport("libc", EntryPoint = "getpid")] private static partial int getpid();
    [LibraryImport("libc", EntryPoint = "gettid")] private static partial int gettid();
    [LibraryImport("libc", EntryPoint = "getuid")] private static partial uint getuid();
    [LibraryImport("libc", EntryPoint = "geteuid")] private static partial uint geteuid();

    public static int Pid => getpid();
    /// <summary>The calling OS thread's id (differs per managed thread).</summary>
    public static int Tid => gettid();
    public static uint Uid => getuid();
    public static uint Euid => geteuid();
    public static bool IsRoot => geteuid() == 0;
}
