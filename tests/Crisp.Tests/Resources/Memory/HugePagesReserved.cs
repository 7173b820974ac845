namespace Crisp.Tests.Resources.Memory;

/// <summary>Raises /proc/sys/vm/nr_hugepages so that at least <c>free</c> default-size huge pages are free (the
/// machine reserves none by default), and puts the old value back on Dispose. Fails when the kernel cannot
/// reserve them (memory too fragmented, no hugetlb support): a root-only test must not skip.</summary>
internal sealed class HugePagesReserved : IDisposable
{
    private const string NrHugepages = "/proc/sys/vm/nr_hugepages";
    private readonly string _old;

    public HugePagesReserved(int free)
    {
        _old = File.ReadAllText(NrHugepages).Trim();
        int want = int.Parse(_old) + Math.Max(0, free - Meminfo("HugePages_Free"));
        File.WriteAllText(NrHugepages, want.ToString());
        int got = Meminfo("HugePages_Free");
        if (got < free)
        {
            Dispose();
            Assert.Fail($"only {got} huge pages free after writing {want} to {NrHugepages}; {free} are needed");
        }
    }

    private static int Meminfo(string key) =>
        int.Parse(File.ReadLines("/proc/meminfo").First(l => l.StartsWith(key + ":", StringComparison.Ordinal))[(key.Length + 1)..].Trim());

    public void Dispose() => File.WriteAllText(NrHugepages, _old);
}
