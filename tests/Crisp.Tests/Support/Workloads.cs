using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;

namespace Crisp.Tests.Support;

/// <summary>Compiles the small C programs in tests/workloads with gcc, cached by the hash of their source and
/// of workload.h, the header some of them share.</summary>
public static class Workloads
{
    private static readonly object Gate = new();

    public static string SourceDir => Path.Combine(AppContext.BaseDirectory, "workloads");

    /// <summary>Path of the executable built from tests/workloads/NAME.c (extra gcc flags optional).</summary>
    public static string Build(string name, string extraFlags = "")
    {
        string source = Path.Combine(SourceDir, name + ".c");
        if (!File.Exists(source))
            throw new FileNotFoundException("workload source missing", source);
        // The shared header is part of every workload's source as far as the cache goes.
        string header = Path.Combine(SourceDir, "workload.h");
        string hash = Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(File.ReadAllText(source) + "\0" + extraFlags
            + "\0" + (File.Exists(header) ? File.ReadAllText(header) : ""))))[..16];
        string cacheDir = Path.Combine(Path.GetTempPath(), "crisp-workloads");
        string exe = Path.Combine(cacheDir, $"{name}-{hash}");
        lock (Gate)
        {
            if (File.Exists(exe))
                return exe;
            Directory.CreateDirectory(cacheDir);
            string tmp = exe + ".tmp" + Environment.ProcessId;
            var psi = new ProcessStartInfo("gcc", $"-O1 -g -Wall -o {tmp} {source} {extraFlags}")
            {
                RedirectStandardError = true,
                RedirectStandardOutput = true,
            };
            using var gcc = Process.Start(psi)!;
            string errors = gcc.StandardError.ReadToEnd();
            gcc.WaitForExit();
            if (gcc.ExitCode != 0)
                throw new InvalidOperationException($"gcc failed for {name}.c:\n{errors}");
            File.Move(tmp, exe, overwrite: true);
            return exe;
        }
    }
}
