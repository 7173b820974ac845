namespace Crisp.Linux;

/// <summary>Syscall numbers for namespaces and their contents (Resources/Namespaces).</summary>
public static partial class Sysno
{
    public const long sethostname = 170, setdomainname = 171;
}
