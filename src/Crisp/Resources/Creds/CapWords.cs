using Google.Protobuf.Collections;

namespace Crisp.Resources.Creds;

/// <summary>Capability sets as CRIU keeps them: two 32-bit words, low first (CR_CAP_SIZE = 2).</summary>
public static class CapWords
{
    public static void Put(RepeatedField<uint> field, ulong set)
    {
        field.Clear();
        field.Add((uint)set);
        field.Add((uint)(set >> 32));
    }

    public static ulong Get(RepeatedField<uint> field)
        => (field.Count > 0 ? field[0] : 0) | (field.Count > 1 ? (ulong)field[1] << 32 : 0);
}
