using System.Diagnostics;

namespace Crisp.Tests.Migration;

/// <summary>A CA and certificates made with openssl at test time (EC P-256, a day): server and client certificates
/// of the CA, for 127.0.0.1 and the given address, and a self-signed "rogue" one that names the same addresses.</summary>
internal sealed class TestCerts : IDisposable
{
    public TestCerts(params string[] addresses)
    {
        Dir = Directory.CreateTempSubdirectory("crisp-tls-").FullName;
        string san = string.Join(',', new[] { "127.0.0.1" }.Concat(addresses).Distinct().Select(a => $"IP:{a}"));
        OpenSsl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", P("ca.key"), "-out", P("ca.pem"), "-days", "1", "-subj", "/CN=crisp test CA");
        foreach (var n in new[] { "server", "client" })
        {
            OpenSsl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", P($"{n}.key"), "-out", P($"{n}.csr"), "-subj", $"/CN=crisp test {n}");
            File.WriteAllText(P($"{n}.ext"), $"subjectAltName={san}\n");
            OpenSsl("x509", "-req", "-in", P($"{n}.csr"), "-CA", P("ca.pem"), "-CAkey", P("ca.key"), "-CAcreateserial", "-out", P($"{n}.pem"), "-days", "1", "-extfile", P($"{n}.ext"));
        }
        OpenSsl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", P("rogue.key"), "-out", P("rogue.pem"), "-days", "1", "-subj", "/CN=crisp rogue", "-addext", $"subjectAltName={san}");
    }

    public string Dir { get; }

    public string P(string name) => Path.Combine(Dir, name);

    /// <summary>crisp's options for one end: the CA and the named certificate with its key.</summary>
    public string[] Options(string who, string ca = "ca") =>
        ["--tls", "--tls-cacert", P($"{ca}.pem"), "--tls-cert", P($"{who}.pem"), "--tls-key", P($"{who}.key")];

    private void OpenSsl(params string[] args)
    {
        var psi = new ProcessStartInfo("openssl") { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var a in args)
            psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        string err = p.StandardError.ReadToEnd();
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, $"openssl {string.Join(' ', args)}: {err}");
    }

    public void Dispose()
    {
        try { Directory.Delete(Dir, recursive: true); } catch (IOException) { }
    }
}
