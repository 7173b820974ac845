using System.Runtime.InteropServices;

namespace Crisp.Linux;

/// <summary>dlopen/dlsym/dlclose. Used instead of NativeLibrary because a plugin must be bound at load
/// (RTLD_NOW): NativeLibrary binds lazily, so a symbol missing from crisp would abort crisp at the plugin's
/// first call into it — mid-dump, with the tree frozen — rather than refusing the plugin up front.</summary>
public static unsafe partial class DynamicLoader
{
    private const int RTLD_NOW = 2;

    [LibraryImport("libc", EntryPoint = "dlopen", StringMarshalling = StringMarshalling.Utf8)]
    private static partial nint dlopen(string file, int mode);

    [LibraryImport("libc", EntryPoint = "dlsym", StringMarshalling = StringMarshalling.Utf8)]
    private static partial nint dlsym(nint handle, string name);

    [LibraryImport("libc", EntryPoint = "dlclose")]
    private static partial int dlclose(nint handle);

    [LibraryImport("libc", EntryPoint = "dlerror")]
    private static partial nint dlerror();

    /// <summary>Loads <paramref name="path"/> with every symbol bound now; throws with dlerror's text.</summary>
    public static nint Open(string path)
    {
        // Called first so that it is bound already: binding it after a failed dlopen would run dlsym, which
        // clears the error it is to report.
        dlerror();
        nint handle = dlopen(path, RTLD_NOW);
        if (handle == 0)
            throw new InvalidOperationException(Marshal.PtrToStringUTF8(dlerror()) ?? "dlopen failed");
        return handle;
    }

    /// <summary>The address of <paramref name="name"/> in the library, or 0 when it has none.</summary>
    public static nint Symbol(nint handle, string name) => dlsym(handle, name);

    public static void Close(nint handle) => dlclose(handle);
}
