using System.Text;

namespace Crisp.Compel.Puppets;

/// <summary>Lays out execve's path, argv and envp (strings, then NULL-terminated pointer arrays) as one
/// buffer to be written at <c>baseAddress</c> in a task.</summary>
public static class ExecArguments
{
    public static (byte[] Buffer, ulong Path, ulong Argv, ulong Envp) Layout(ulong baseAddress, string path,
        IReadOnlyList<string> argv, IReadOnlyList<string> envp)
    {
        var strings = new MemoryStream();
        ulong Add(string s)
        {
            ulong at = baseAddress + (ulong)strings.Length;
            strings.Write(Encoding.UTF8.GetBytes(s));
            strings.WriteByte(0);
            return at;
        }
        ulong pathAt = Add(path);
        var argvPtrs = argv.Select(Add).ToList();
        var envpPtrs = envp.Select(Add).ToList();
        while (strings.Length % 8 != 0)
            strings.WriteByte(0);
        ulong argvAt = baseAddress + (ulong)strings.Length;
        ulong envpAt = argvAt + (ulong)(argvPtrs.Count + 1) * 8;
        var writer = new BinaryWriter(strings);
        foreach (var p in argvPtrs.Append(0UL).Concat(envpPtrs).Append(0UL))
            writer.Write(p);
        return (strings.ToArray(), pathAt, argvAt, envpAt);
    }
}
