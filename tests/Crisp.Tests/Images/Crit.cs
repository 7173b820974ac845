using System.Diagnostics;
using System.Text.Json;

namespace Crisp.Tests.Images;

/// <summary>Runs Debian's crit (CRIU 3.17) on an image file.</summary>
internal static class Crit
{
    private const string Exe = "/usr/bin/crit";

    /// <summary>`crit show FILE` stdout, exactly.</summary>
    public static string Show(string path) => Run("show", path);

    /// <summary>`crit decode -i FILE` (plain numbers, no pretty conversions), parsed.</summary>
    public static JsonElement Decode(string path)
    {
        using var doc = JsonDocument.Parse(Run("decode", "-i", path));
        return doc.RootElement.Clone();
    }

    /// <summary>`crit encode -i JSON -o IMG`: an image written by CRIU's own code.</summary>
    public static void Encode(string json, string image) => Run("encode", "-i", json, "-o", image);

    private static string Run(params string[] args)
    {
        Assert.True(File.Exists(Exe), $"{Exe} is not installed (apt-get install criu): the compatibility tests need it");
        var psi = new ProcessStartInfo(Exe) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args)
            psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stderr = p.StandardError.ReadToEndAsync();
        string stdout = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, $"crit {string.Join(' ', args)} failed ({p.ExitCode}): {stderr.Result}");
        return stdout;
    }
}
