using System.Net.Security;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Crisp.Security.Tls;

/// <summary>--tls for crisp's network connections (the page server, migrate/receive), as CRIU's (criu/tls.c): both
/// ends present a certificate (PEM, --tls-cert/--tls-key), both check the other's against the CA (--tls-cacert;
/// without it CRIU's default file when present, else the system's trust), and the client checks that the server's
/// certificate names the address it connected to unless --tls-no-cn-verify. The files are read when the settings are
/// made, so a missing or bad file fails before anything is touched.</summary>
public sealed class TlsSettings : IDisposable
{
    /// <summary>CRIU's default paths (SYSCONFDIR/pki/...).</summary>
    public const string DefaultCaCert = "/etc/pki/CA/cacert.pem", DefaultCert = "/etc/pki/criu/cert.pem", DefaultKey = "/etc/pki/criu/private/key.pem";

    private readonly X509Certificate2 _certificate;
    private readonly X509Certificate2Collection _trust;
    private readonly bool _noNameCheck;

    private TlsSettings(X509Certificate2 certificate, X509Certificate2Collection trust, bool noNameCheck)
    {
        _certificate = certificate;
        _trust = trust;
        _noNameCheck = noNameCheck;
    }

    /// <summary>Loads the certificate, its key and the CA (null paths: CRIU's defaults).</summary>
    public static TlsSettings Load(string? caCert, string? cert, string? key, bool noCnVerify)
    {
        cert ??= DefaultCert;
        key ??= DefaultKey;
        X509Certificate2 certificate;
        try
        {
            certificate = X509Certificate2.CreateFromPemFile(cert, key);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or CryptographicException or ArgumentException)
        {
            throw new CrispException($"TLS: cannot load the certificate {cert} with the key {key}: {OneLine(e.Message)}");
        }
        var trust = new X509Certificate2Collection();
        string? ca = caCert ?? (File.Exists(DefaultCaCert) ? DefaultCaCert : null);
        if (ca is not null)
        {
            try
            {
                trust.ImportFromPemFile(ca);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or CryptographicException or ArgumentException)
            {
                certificate.Dispose();
                throw new CrispException($"TLS: cannot load the CA certificate {ca}: {OneLine(e.Message)}");
            }
            if (trust.Count == 0)
            {
                certificate.Dispose();
                throw new CrispException($"TLS: no CA certificate in {ca}");
            }
        }
        return new TlsSettings(certificate, trust, noCnVerify);
    }

    /// <summary>The client's end: TLS over <paramref name="inner"/>, the server's certificate checked (and its name
    /// against <paramref name="host"/>). A failed handshake is one line naming <paramref name="what"/>.</summary>
    public Stream Client(Stream inner, string host, string what, TimeSpan timeout)
    {
        var ssl = new SslStream(inner, leaveInnerStreamOpen: false);
        string? refused = null;
        var options = new SslClientAuthenticationOptions
        {
            TargetHost = host,
            ClientCertificates = [_certificate],
            RemoteCertificateValidationCallback = (_, cert, _, errors) => (refused = Refusal(cert, errors, checkName: !_noNameCheck, host)) is null,
            CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
        };
        Handshake(ssl, what, timeout, token => ssl.AuthenticateAsClientAsync(options, token), () => refused);
        return ssl;
    }

    /// <summary>The server's end: TLS over <paramref name="inner"/>; the client must present a certificate of the CA.</summary>
    public Stream Server(Stream inner, string what, TimeSpan timeout)
    {
        var ssl = new SslStream(inner, leaveInnerStreamOpen: false);
        string? refused = null;
        var options = new SslServerAuthenticationOptions
        {
            ServerCertificate = _certificate,
            ClientCertificateRequired = true,
            RemoteCertificateValidationCallback = (_, cert, _, errors) => (refused = Refusal(cert, errors, checkName: false, null)) is null,
            CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
        };
        Handshake(ssl, what, timeout, token => ssl.AuthenticateAsServerAsync(options, token), () => refused);
        return ssl;
    }

    public void Dispose()
    {
        _certificate.Dispose();
        foreach (var c in _trust)
            c.Dispose();
    }

    private static void Handshake(SslStream ssl, string what, TimeSpan timeout, Func<CancellationToken, Task> authenticate, Func<string?> refused)
    {
        try
        {
            using var cts = new CancellationTokenSource(timeout);
            authenticate(cts.Token).GetAwaiter().GetResult();
        }
        catch (Exception e) when (e is AuthenticationException or IOException or OperationCanceledException or System.ComponentModel.Win32Exception)
        {
            ssl.Dispose();
            string why = refused() is { } r ? r : e is OperationCanceledException ? "timed out" : OneLine(e.InnerException is { } inner && e is AuthenticationException ? $"{e.Message} ({inner.Message})" : e.Message);
            throw new CrispException($"{what}: TLS handshake failed: {why}");
        }
    }

    /// <summary>Why the peer's certificate is refused, null when it is trusted: it must chain to our CA (or to the
    /// system's trust when there is none) and, for a server, name the host by the platform's rules (the SAN's DNS
    /// names and IP addresses).</summary>
    private string? Refusal(X509Certificate? cert, SslPolicyErrors errors, bool checkName, string? host)
    {
        if (cert is not X509Certificate2 peer || (errors & SslPolicyErrors.RemoteCertificateNotAvailable) != 0)
            return "the peer presented no certificate";
        if (checkName && (errors & SslPolicyErrors.RemoteCertificateNameMismatch) != 0)
            return $"the peer's certificate ({peer.Subject}) is not for {host} (--tls-no-cn-verify skips this check)";
        bool trusted;
        if (_trust.Count == 0)
            trusted = (errors & SslPolicyErrors.RemoteCertificateChainErrors) == 0;
        else
        {
            using var chain = new X509Chain();
            chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
            chain.ChainPolicy.CustomTrustStore.AddRange(_trust);
            chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
            trusted = chain.Build(peer);
        }
        return trusted ? null : $"the peer's certificate ({peer.Subject}, issued by {peer.Issuer}) is not signed by {(_trust.Count == 0 ? "a CA this system trusts" : "the CA of --tls-cacert")}";
    }

    private static string OneLine(string s) => s.ReplaceLineEndings(" ").Trim();
}
