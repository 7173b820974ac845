namespace Crisp.Resources.Cgroups;

/// <summary>--manage-cgroups modes, CRIU's meanings (criu/cgroup.c): which cgroup dirs restore may make and whose
/// properties it sets. The option alone means soft; without it crisp ignores cgroups (CRIU's default is soft).</summary>
public enum CgroupMode
{
    /// <summary>Cgroups are neither dumped nor restored: the tree stays where crisp is.</summary>
    Ignore,
    /// <summary>The dirs must exist; the tasks are placed, no property is set.</summary>
    None,
    /// <summary>The dirs must exist; their dumped properties are set.</summary>
    Props,
    /// <summary>Missing dirs are made with their dumped properties; existing ones are kept as they are.</summary>
    Soft,
    /// <summary>Missing dirs are made; every dir gets its dumped properties.</summary>
    Full,
    /// <summary>As full, but a dir that exists already is refused.</summary>
    Strict,
}

public static class CgroupModes
{
    /// <summary>CRIU's spelling ("soft" when the option has no value); anything else is refused in one line.</summary>
    public static CgroupMode Parse(string? value) => value switch
    {
        null or "soft" => CgroupMode.Soft,
        "none" => CgroupMode.None,
        "props" => CgroupMode.Props,
        "full" => CgroupMode.Full,
        "strict" => CgroupMode.Strict,
        "ignore" => CgroupMode.Ignore,
        _ => throw new CrispException($"--manage-cgroups={value}: unknown cgroups mode (none, props, soft, full, strict or ignore)"),
    };
}
