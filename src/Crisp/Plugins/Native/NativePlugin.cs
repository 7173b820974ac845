using System.Runtime.InteropServices;
using Crisp.Linux;

namespace Crisp.Plugins.Native;

/// <summary>A CRIU plugin library (a .so exporting <c>CR_PLUGIN_DESC</c>) behind crisp's plugin contract. Calls go
/// through the descriptor's function pointers with CRIU's signatures; a hook returns -ENOTSUP for "not mine"
/// (false/null here, the next plugin is asked), another negative errno for a failure (thrown: the run is
/// aborted), zero or a descriptor when it handled the object — CRIU's run_plugins. Hooks are read from the
/// descriptor at each call: CRIU chains them after init, which may fill them in.</summary>
internal sealed unsafe class NativePlugin : ICrispPlugin
{
    private const int ENOTSUP = Errnos.EOPNOTSUPP;   // the same number on Linux
    private readonly PluginDescriptor* _desc;
    private nint _library;
    private PluginContext? _context;
    private UnixFd? _imagesDir;

    public NativePlugin(string path, nint library, PluginDescriptor* desc)
    {
        Path = path;
        _library = library;
        _desc = desc;
        Name = Marshal.PtrToStringUTF8((nint)desc->Name) ?? path;
    }

    public string Name { get; }
    public string Path { get; }

    /// <summary>Set by the plugin through set_compel_interrupt_only_mode (CRIU's CUDA plugin does, in init).</summary>
    public bool NeedsInterruptOnlySeize { get; set; }

    internal PluginContext Context => _context ?? throw new InvalidOperationException($"plugin {Name} is not initialised");

    /// <summary>criu_get_image_dir: a directory descriptor of the images directory, open until Exit.</summary>
    internal int ImagesDirFd() =>
        (_imagesDir ??= FileIo.Open(Context.ImagesDir, FileIo.O_RDONLY | FileIo.O_DIRECTORY | FileIo.O_CLOEXEC)).Fd;

    public PluginActivation Init(PluginContext context)
    {
        _context = context;
        if (_desc->Init == null)
            return PluginActivation.Enabled;
        int r;
        using (CriuPluginApi.Enter(this))
            r = _desc->Init((int)context.Stage);
        if (r != 0)
            throw new InvalidOperationException($"init returned {r}");
        return PluginActivation.Enabled;
    }

    /// <summary>exit(stage, ret) with CRIU's ret (0 success, -1 failure), then the library is closed as CRIU does.</summary>
    public void Exit(PluginStage stage, bool succeeded)
    {
        try
        {
            if (_desc->Exit != null && _library != 0)
                using (CriuPluginApi.Enter(this))
                    _desc->Exit((int)stage, succeeded ? 0 : -1);
        }
        finally
        {
            _imagesDir?.Dispose();
            _imagesDir = null;
            if (_library != 0)
                DynamicLoader.Close(_library);
            _library = 0;
        }
    }

    public bool PauseDevices(int pid) => Handled(PluginHook.PauseDevices, f => ((delegate* unmanaged<int, int>)f)(pid));
    public bool CheckpointDevices(int pid) => Handled(PluginHook.CheckpointDevices, f => ((delegate* unmanaged<int, int>)f)(pid));
    public bool DumpDevicesLate(int id) => Handled(PluginHook.DumpDevicesLate, f => ((delegate* unmanaged<int, int>)f)(id));
    public bool ResumeDevicesLate(int pid) => Handled(PluginHook.ResumeDevicesLate, f => ((delegate* unmanaged<int, int>)f)(pid));
    public bool RestoreInit() => Handled(PluginHook.RestoreInit, f => ((delegate* unmanaged<int>)f)());
    public bool PostForking() => Handled(PluginHook.PostForking, f => ((delegate* unmanaged<int>)f)());
    public bool DumpUnixSocket(int fd, uint id) => Handled(PluginHook.DumpUnixSocket, f => ((delegate* unmanaged<int, int, int>)f)(fd, (int)id));
    public bool DumpExtFile(int fd, uint id) => Handled(PluginHook.DumpExtFile, f => ((delegate* unmanaged<int, int, int>)f)(fd, (int)id));

    public bool DumpExtMount(string mountpoint, int mountId)
    {
        using var path = new Utf8(mountpoint);
        return Handled(PluginHook.DumpExtMount, f => ((delegate* unmanaged<byte*, int, int>)f)(path.Pointer, mountId));
    }

    public bool DumpExtLink(int index, int type, string kind)
    {
        using var text = new Utf8(kind);
        return Handled(PluginHook.DumpExtLink, f => ((delegate* unmanaged<int, int, byte*, int>)f)(index, type, text.Pointer));
    }

    /// <summary>CRIU passes the device file's struct stat; crisp fills one from the descriptor.</summary>
    public bool HandleDeviceVma(int fd, ulong device, ulong inode)
    {
        var stat = new byte[FileStat.Size];
        FileStat.Fstat(fd, stat);
        fixed (byte* st = stat)
        {
            byte* p = st;
            return Handled(PluginHook.HandleDeviceVma, f => ((delegate* unmanaged<int, byte*, int>)f)(fd, p));
        }
    }

    public int? RestoreUnixSocket(uint id) => Descriptor(PluginHook.RestoreUnixSocket, f => ((delegate* unmanaged<int, int>)f)((int)id));

    public int? RestoreExtFile(uint id, out bool retry)
    {
        byte again = 0;
        byte* pAgain = &again;
        var fd = Descriptor(PluginHook.RestoreExtFile, f => ((delegate* unmanaged<int, byte*, int>)f)((int)id, pAgain));
        // CRIU: a plugin that needs other files first answers >= 0 with retry_needed set; the answer is not a file.
        retry = fd is not null && again != 0;
        return retry ? null : fd;
    }

    public bool RestoreExtMount(int mountId, string mountpoint, string oldRoot, out bool isFile)
    {
        using var mp = new Utf8(mountpoint);
        using var root = new Utf8(oldRoot);
        int file = 0;
        int* pFile = &file;
        bool handled = Handled(PluginHook.RestoreExtMount, f => ((delegate* unmanaged<int, byte*, byte*, int*, int>)f)(mountId, mp.Pointer, root.Pointer, pFile));
        isFile = file != 0;
        return handled;
    }

    public bool UpdateVmaMap(string path, ulong address, ulong oldPgoff, out ulong newPgoff, out int pluginFd)
    {
        using var file = new Utf8(path);
        ulong pgoff = oldPgoff;
        int fd = -1;
        ulong* pPgoff = &pgoff;
        int* pFd = &fd;
        bool handled = Handled(PluginHook.UpdateVmaMap, f => ((delegate* unmanaged<byte*, ulong, ulong, ulong*, int*, int>)f)(file.Pointer, address, oldPgoff, pPgoff, pFd));
        newPgoff = handled ? pgoff : oldPgoff;
        pluginFd = handled ? fd : -1;
        return handled;
    }

    /// <summary>A hook that answers 0 (handled), -ENOTSUP (not mine) or -errno (failed).</summary>
    private bool Handled(PluginHook hook, Func<nint, int> call) => Descriptor(hook, call) is not null;

    /// <summary>A hook that answers a descriptor or 0 (handled), -ENOTSUP (not mine) or -errno (failed).</summary>
    private int? Descriptor(PluginHook hook, Func<nint, int> call)
    {
        nint fn = (uint)hook < _desc->MaxHooks && _library != 0 ? _desc->Hooks[(int)hook] : 0;
        if (fn == 0)
            return null;
        int r;
        using (CriuPluginApi.Enter(this))
            r = call(fn);
        if (r == -ENOTSUP)
            return null;
        if (r < 0)
            throw new InvalidOperationException($"returned {Errnos.Describe(-r)}");
        return r;
    }

    /// <summary>A NUL-terminated UTF-8 copy of a string for the call's duration.</summary>
    private readonly struct Utf8(string s) : IDisposable
    {
        private readonly nint _p = Marshal.StringToCoTaskMemUTF8(s);
        public byte* Pointer => (byte*)_p;
        public void Dispose() => Marshal.FreeCoTaskMem(_p);
    }
}
