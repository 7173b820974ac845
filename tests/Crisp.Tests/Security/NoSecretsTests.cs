using System.Text;
using Crisp.Linux;
using Crisp.Tests.Images;
using Crisp.Tests.Integration;
using Crisp.Tests.Support;

namespace Crisp.Tests.Security;

/// <summary>No secrets outside the pages: a process whose environment holds a secret is dumped at -v4; the secret
/// is in its plain pages (so the check can see it at all), never in the log, any other image, the stats or
/// `crisp show`; with --encrypt-key it is in no file of the checkpoint.</summary>
public class NoSecretsTests
{
    [RootFact]
    public void AnEnvironmentSecretReachesOnlyThePagesAndNotEvenThemWhenEncrypted()
    {
        using var dir = new Live.TempDir();
        string secret = "crisp-test-secret-" + Guid.NewGuid().ToString("N");
        int pid = Spawn.Start("/bin/sleep", ["sleep", "1000"], new SpawnOptions
        {
            NewSession = true,
            Opens = Live.DevNullStdio,
            Environment = [$"API_TOKEN={secret}", "PATH=/usr/bin:/bin"],
        });
        try
        {
            Live.WaitFor(() => File.ReadAllText($"/proc/{pid}/comm").Trim() == "sleep", "sleep to run");
            string plain = Path.Combine(dir.Path, "plain"), sealedDir = Path.Combine(dir.Path, "sealed");
            string key = Path.Combine(dir.Path, "pages.key");
            File.WriteAllBytes(key, System.Security.Cryptography.RandomNumberGenerator.GetBytes(32));
            var r = CrispCli.Run("dump", "-R", "-t", pid.ToString(), "-D", plain, "-v4", "-o", "dump.log", "--display-stats");
            Assert.True(r.ExitCode == 0, r.Stderr);
            Assert.DoesNotContain(secret, r.Stdout + r.Stderr);
            byte[] needle = Encoding.ASCII.GetBytes(secret);
            var holders = Directory.EnumerateFiles(plain).Where(f => File.ReadAllBytes(f).AsSpan().IndexOf(needle) >= 0).Select(Path.GetFileName).ToList();
            Assert.True(holders.Count > 0 && holders.All(n => n!.StartsWith("pages-", StringComparison.Ordinal)), $"secret found in: {string.Join(", ", holders)}");
            foreach (var f in Directory.EnumerateFiles(plain).Where(f => !Path.GetFileName(f).StartsWith("pages-", StringComparison.Ordinal)))
            {
                var show = CrispCli.Run("show", f);
                Assert.DoesNotContain(secret, show.Stdout + show.Stderr);
            }
            Assert.DoesNotContain(secret, CrispCli.Run("show", plain).Stdout);

            r = CrispCli.Run("dump", "-R", "-t", pid.ToString(), "-D", sealedDir, "-v4", "-o", "dump.log", "--encrypt-key", key);
            Assert.True(r.ExitCode == 0, r.Stderr);
            Assert.DoesNotContain(Directory.EnumerateFiles(sealedDir), f => File.ReadAllBytes(f).AsSpan().IndexOf(needle) >= 0);
        }
        finally
        {
            Live.KillAll([pid], pid);
        }
    }

    /// <summary>What sits unread in a pipe is a payload: `crisp show pipes-data.img` prints its length, and the bytes
    /// (crit's base64) only with --show-secrets.</summary>
    [RootFact]
    public void PipePayloadsShowOnlyWithShowSecrets()
    {
        using var dir = new Live.TempDir();
        string secret = "pipe-secret-" + Guid.NewGuid().ToString("N");
        int pid = Spawn.Start("/usr/bin/python3", ["python3", "-c",
            $"import os,time\nr,w=os.pipe()\nos.write(w,b'{secret}')\nopen('/proc/self/comm','w').write('piped')\ntime.sleep(1000)"],
            new SpawnOptions { NewSession = true, Opens = Live.DevNullStdio });
        try
        {
            Live.WaitFor(() => File.ReadAllText($"/proc/{pid}/comm").Trim() == "piped", "the pipe to be written");
            var r = CrispCli.Run("dump", "-R", "-t", pid.ToString(), "-D", dir.Images);
            Assert.True(r.ExitCode == 0, r.Stderr);
            string data = Path.Combine(dir.Images, "pipes-data.img");
            var hidden = CrispCli.Run("show", data);
            Assert.True(hidden.ExitCode == 0, hidden.Stderr);
            Assert.Contains($"\"extra\": \"<sensitive: {secret.Length} bytes; --show-secrets prints them>\"", hidden.Stdout);
            string b64 = Convert.ToBase64String(Encoding.ASCII.GetBytes(secret));
            Assert.DoesNotContain(b64, hidden.Stdout);
            var shown = CrispCli.Run("show", data, "--show-secrets");
            Assert.True(shown.ExitCode == 0, shown.Stderr);
            Assert.Contains(b64, shown.Stdout);
            Assert.Equal(Crit.Show(data), shown.Stdout);   // with it, exactly what crit prints
        }
        finally
        {
            Live.KillAll([pid], pid);
        }
    }
}
