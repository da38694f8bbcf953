//! The web configuration file of Prometheus exporters (exporter-toolkit's format, `--web-config-file`): TLS,
//! basic-auth users, response headers and a request rate limit, read and checked once at start.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use hyper::header::{HeaderName, HeaderValue};
use rustls::crypto::CryptoProvider;
use rustls::crypto::ring::{cipher_suite as suite, kx_group};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, SupportedCipherSuite, SupportedProtocolVersion};
use serde::Deserialize;

use crate::duration::parse_duration;

/// The file as written; unknown keys are errors, as in exporter-toolkit.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    tls_server_config: Option<TlsFile>,
    http_server_config: Option<HttpFile>,
    basic_auth_users: Option<BTreeMap<String, String>>,
    rate_limit: Option<RateLimitFile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsFile {
    cert: Option<String>,
    key: Option<String>,
    client_ca: Option<String>,
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    client_auth_type: Option<String>,
    client_ca_file: Option<PathBuf>,
    client_allowed_sans: Option<Vec<String>>,
    min_version: Option<String>,
    max_version: Option<String>,
    cipher_suites: Option<Vec<String>>,
    prefer_server_cipher_suites: Option<bool>,
    curve_preferences: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpFile {
    /// Accepted for compatibility: kwatch speaks HTTP/1.1 only.
    #[allow(dead_code)]
    http2: Option<bool>,
    headers: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RateLimitFile {
    interval: Option<String>,
    burst: Option<u32>,
}

/// What the file asks for, checked and ready to serve with.
#[derive(Debug, Default)]
pub struct WebConfig {
    /// Serve HTTPS with this configuration.
    pub tls: Option<Arc<ServerConfig>>,
    /// User name to bcrypt hash; empty: no authentication.
    pub users: BTreeMap<String, String>,
    /// Added to every response.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// At most one request per `interval`, with bursts of `burst`.
    pub rate_limit: Option<RateLimit>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub interval: Duration,
    pub burst: u32,
}

/// The response headers exporter-toolkit lets the file set, with the values it accepts (`None`: any).
const HEADERS: [(&str, Option<&[&str]>); 5] = [
    ("Content-Security-Policy", None),
    ("X-Frame-Options", Some(&["deny", "sameorigin"])),
    ("X-Content-Type-Options", Some(&["nosniff"])),
    ("X-XSS-Protection", None),
    ("Strict-Transport-Security", None),
];

/// Reads and checks the file; relative paths in it are relative to the file's directory.
pub fn load(path: &Path) -> anyhow::Result<WebConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read web config '{}'", path.display()))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    parse(&text, dir).with_context(|| format!("invalid web config '{}'", path.display()))
}

/// Parses the file's text; `dir` anchors relative paths.
pub fn parse(text: &str, dir: &Path) -> anyhow::Result<WebConfig> {
    // An empty file is a valid, empty configuration.
    let file: File = if text.trim().is_empty() {
        File::default()
    } else {
        serde_norway::from_str(text)?
    };
    let mut users = BTreeMap::new();
    for (user, hash) in file.basic_auth_users.unwrap_or_default() {
        if hash.parse::<bcrypt::HashParts>().is_err() {
            bail!("basic_auth_users: the password of '{user}' is not a bcrypt hash");
        }
        users.insert(user, hash);
    }
    let mut headers = Vec::new();
    for (name, value) in file
        .http_server_config
        .and_then(|h| h.headers)
        .unwrap_or_default()
    {
        let Some((known, allowed)) = HEADERS.iter().find(|(h, _)| h.eq_ignore_ascii_case(&name))
        else {
            let names: Vec<&str> = HEADERS.iter().map(|(h, _)| *h).collect();
            bail!(
                "http_server_config.headers: '{name}' cannot be set (only {})",
                names.join(", ")
            );
        };
        if value.is_empty() {
            continue;
        }
        if let Some(allowed) = allowed {
            if !allowed.iter().any(|a| a.eq_ignore_ascii_case(&value)) {
                bail!(
                    "http_server_config.headers: invalid {known} '{value}': must be {}",
                    allowed.join(" or ")
                );
            }
        }
        let value = HeaderValue::from_str(&value)
            .with_context(|| format!("http_server_config.headers: invalid {known} '{value}'"))?;
        headers.push((HeaderName::from_static(lower(known)), value));
    }
    let rate_limit = match file.rate_limit {
        None => None,
        Some(r) => rate_limit(r)?,
    };
    let tls = match file.tls_server_config {
        Some(t) if !t.is_empty() => Some(Arc::new(tls(t, dir).context("tls_server_config")?)),
        _ => None,
    };
    Ok(WebConfig {
        tls,
        users,
        headers,
        rate_limit,
    })
}

/// The lowercase static name of one of [`HEADERS`] (header names must be lowercase for `from_static`).
fn lower(name: &str) -> &'static str {
    match name {
        "Content-Security-Policy" => "content-security-policy",
        "X-Frame-Options" => "x-frame-options",
        "X-Content-Type-Options" => "x-content-type-options",
        "X-XSS-Protection" => "x-xss-protection",
        _ => "strict-transport-security",
    }
}

fn rate_limit(r: RateLimitFile) -> anyhow::Result<Option<RateLimit>> {
    let interval = match &r.interval {
        None => 0,
        Some(s) => parse_duration(s).map_err(|e| anyhow::anyhow!("rate_limit.interval: {e}"))?,
    };
    if interval == 0 {
        return Ok(None);
    }
    let burst = r.burst.unwrap_or(1);
    if burst == 0 {
        bail!("rate_limit.burst: must be at least 1");
    }
    Ok(Some(RateLimit {
        interval: Duration::from_millis(interval),
        burst,
    }))
}

impl TlsFile {
    /// exporter-toolkit serves plain HTTP when the section names no certificate, key or client CA.
    fn is_empty(&self) -> bool {
        self.cert.is_none()
            && self.key.is_none()
            && self.cert_file.is_none()
            && self.key_file.is_none()
            && self.client_ca.is_none()
            && self.client_ca_file.is_none()
            && self.client_auth_type.is_none()
    }
}

/// PEM text given inline or in a file (not both).
fn pem(
    inline: Option<String>,
    file: Option<PathBuf>,
    what: &str,
    dir: &Path,
) -> anyhow::Result<Option<Vec<u8>>> {
    match (inline, file) {
        (Some(_), Some(_)) => bail!("both {what} and {what}_file are set: use one"),
        (Some(text), None) => Ok(Some(text.into_bytes())),
        (None, Some(path)) => {
            let path = dir.join(path);
            std::fs::read(&path)
                .map(Some)
                .with_context(|| format!("cannot read {what}_file '{}'", path.display()))
        }
        (None, None) => Ok(None),
    }
}

fn tls(t: TlsFile, dir: &Path) -> anyhow::Result<ServerConfig> {
    if t.client_allowed_sans
        .as_ref()
        .is_some_and(|s| !s.is_empty())
    {
        bail!("client_allowed_sans is not supported by kwatch: use a dedicated client CA instead");
    }
    if t.cert.is_none() && t.cert_file.is_none() {
        bail!("missing cert_file (or cert)");
    }
    if t.key.is_none() && t.key_file.is_none() {
        bail!("missing key_file (or key)");
    }
    let Some(cert) = pem(t.cert, t.cert_file, "cert", dir)? else {
        bail!("missing cert_file (or cert)");
    };
    let Some(key) = pem(t.key, t.key_file, "key", dir)? else {
        bail!("missing key_file (or key)");
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert)
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("cannot read the certificate: {e}"))?;
    if certs.is_empty() {
        bail!("the certificate holds no PEM CERTIFICATE block");
    }
    let key = PrivateKeyDer::from_pem_slice(&key)
        .map_err(|e| anyhow::anyhow!("cannot read the private key: {e}"))?;
    let client_ca = pem(t.client_ca, t.client_ca_file, "client_ca", dir)?;

    let versions = versions(t.min_version.as_deref(), t.max_version.as_deref())?;
    let mut crypto = provider();
    if let Some(names) = &t.cipher_suites {
        if !names.is_empty() {
            let mut chosen: Vec<SupportedCipherSuite> = crypto
                .cipher_suites
                .iter()
                .copied()
                .filter(|s| s.tls13().is_some())
                .collect();
            for name in names {
                chosen.push(cipher_suite(name)?);
            }
            crypto.cipher_suites = chosen;
        }
    }
    if let Some(names) = &t.curve_preferences {
        if !names.is_empty() {
            crypto.kx_groups = names.iter().map(|n| curve(n)).collect::<Result<_, _>>()?;
        }
    }
    let builder = ServerConfig::builder_with_provider(Arc::new(crypto))
        .with_protocol_versions(&versions)
        .context("invalid TLS settings")?;

    let auth = t.client_auth_type.as_deref();
    let builder = match (auth, client_ca) {
        (None | Some("NoClientCert"), None) | (Some("NoClientCert"), Some(_)) => {
            builder.with_no_client_auth()
        }
        (Some("RequireAndVerifyClientCert" | "VerifyClientCertIfGiven"), None) => {
            bail!(
                "client_auth_type '{}' needs client_ca_file",
                auth.unwrap_or_default()
            )
        }
        (None | Some("RequireAndVerifyClientCert" | "VerifyClientCertIfGiven"), Some(ca)) => {
            let mut roots = RootCertStore::empty();
            for c in CertificateDer::pem_slice_iter(&ca) {
                let c = c.map_err(|e| anyhow::anyhow!("cannot read the client CA: {e}"))?;
                roots.add(c).context("invalid client CA certificate")?;
            }
            if roots.is_empty() {
                bail!("the client CA holds no PEM CERTIFICATE block");
            }
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::new(provider()));
            let verifier = if auth == Some("VerifyClientCertIfGiven") {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            builder.with_client_cert_verifier(verifier.build().context("invalid client CA")?)
        }
        (Some(other @ ("RequestClientCert" | "RequireAnyClientCert")), _) => bail!(
            "client_auth_type '{other}' is not supported: it accepts unverified certificates; use \
             RequireAndVerifyClientCert"
        ),
        (Some(other), _) => bail!(
            "invalid client_auth_type '{other}': must be NoClientCert, VerifyClientCertIfGiven or \
             RequireAndVerifyClientCert"
        ),
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .context("the certificate and key do not make a usable pair")?;
    config.ignore_client_order = t.prefer_server_cipher_suites.unwrap_or(true);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The TLS versions between `min` and `max` (Go's names: `TLS10` ... `TLS13`). rustls speaks 1.2 and 1.3
/// only, so a minimum below 1.2 means 1.2.
fn versions(
    min: Option<&str>,
    max: Option<&str>,
) -> anyhow::Result<Vec<&'static SupportedProtocolVersion>> {
    let number = |field: &str, v: &str| -> anyhow::Result<u8> {
        match v {
            "TLS10" => Ok(10),
            "TLS11" => Ok(11),
            "TLS12" => Ok(12),
            "TLS13" => Ok(13),
            _ => bail!("invalid {field} '{v}': must be TLS10, TLS11, TLS12 or TLS13"),
        }
    };
    let min = min
        .map(|v| number("min_version", v))
        .transpose()?
        .unwrap_or(12);
    let max = max
        .map(|v| number("max_version", v))
        .transpose()?
        .unwrap_or(13);
    if min > max {
        bail!("min_version is above max_version");
    }
    if max < 12 {
        bail!("max_version below TLS12 is not supported (kwatch speaks TLS 1.2 and 1.3)");
    }
    let mut v = Vec::new();
    if min <= 12 {
        v.push(&rustls::version::TLS12);
    }
    if max >= 13 {
        v.push(&rustls::version::TLS13);
    }
    Ok(v)
}

/// A TLS 1.2 cipher suite by its Go name (TLS 1.3 suites are not configurable, as in Go).
fn cipher_suite(name: &str) -> anyhow::Result<SupportedCipherSuite> {
    Ok(match name {
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256" => suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384" => suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305"
        | "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256" => {
            suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
        }
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" => suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384" => suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305" | "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256" => {
            suite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
        }
        _ => bail!(
            "cipher suite '{name}' is not supported: kwatch offers the ECDHE AES-GCM and CHACHA20-POLY1305 suites"
        ),
    })
}

/// A key exchange group by its Go name.
fn curve(name: &str) -> anyhow::Result<&'static dyn rustls::crypto::SupportedKxGroup> {
    Ok(match name {
        "X25519" => kx_group::X25519,
        "CurveP256" => kx_group::SECP256R1,
        "CurveP384" => kx_group::SECP384R1,
        _ => bail!("curve '{name}' is not supported: use X25519, CurveP256 or CurveP384"),
    })
}

/// rustls on *ring*: it builds with a C compiler alone (aws-lc-rs needs more) and is what the tests' certificate
/// generator uses. rustls 0.23.48 deprecated it for lacking post-quantum key exchange (X25519MLKEM768), which
/// protects recorded traffic against future quantum computers; metrics that are minutes old hardly need it.
#[allow(deprecated)]
fn provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// The provider every TLS connection uses, installed once for rustls' process-wide default.
pub fn install_crypto_provider() {
    // Fails only when one is installed already, which is as good.
    let _ = CryptoProvider::install_default(provider());
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const HASH: &str = "$2y$10$X0h1gDsPszWURQaxFh.zoubFi6DXncSjhoQNJgRrnGs7EsimhC7zG";

    fn err(text: &str) -> String {
        format!("{:#}", parse(text, Path::new("/nonexistent")).unwrap_err())
    }

    #[test]
    fn users_headers_and_rate_limit() {
        let c = parse(
            &format!(
                "basic_auth_users:\n  alice: {HASH}\nhttp_server_config:\n  http2: false\n  headers:\n    \
                 X-Frame-Options: deny\n    Content-Security-Policy: \"\"\nrate_limit:\n  interval: 1s\n  burst: 5\n"
            ),
            Path::new("."),
        )
        .unwrap();
        assert_eq!(c.users.get("alice").map(String::as_str), Some(HASH));
        assert!(c.tls.is_none());
        assert_eq!(c.headers.len(), 1);
        assert_eq!(c.headers[0].0.as_str(), "x-frame-options");
        assert_eq!(
            c.rate_limit,
            Some(RateLimit {
                interval: Duration::from_secs(1),
                burst: 5
            })
        );
        assert!(parse("", Path::new(".")).unwrap().users.is_empty());
    }

    #[test]
    fn mistakes_are_clear_errors() {
        assert!(err("basic_auth_user:\n  a: b\n").contains("unknown field `basic_auth_user`"));
        assert!(
            err("basic_auth_users:\n  alice: secret\n")
                .contains("the password of 'alice' is not a bcrypt hash")
        );
        assert!(err("tls_server_config:\n  cert_file: a.pem\n").contains("missing key_file"));
        assert!(
            err("tls_server_config:\n  cert_file: a.pem\n  key_file: b.pem\n")
                .contains("cannot read cert_file '/nonexistent/a.pem'")
        );
        assert!(
            err("tls_server_config:\n  crt_file: a.pem\n").contains("unknown field `crt_file`")
        );
        assert!(
            err("http_server_config:\n  headers:\n    X-Frame-Options: allow\n")
                .contains("invalid X-Frame-Options 'allow'")
        );
        assert!(
            err("http_server_config:\n  headers:\n    Server: x\n")
                .contains("'Server' cannot be set")
        );
        assert!(err("rate_limit:\n  interval: soon\n").contains("invalid duration 'soon'"));
        assert_eq!(
            versions(Some("TLS13"), Some("TLS12"))
                .unwrap_err()
                .to_string(),
            "min_version is above max_version"
        );
        assert_eq!(versions(Some("TLS10"), None).unwrap().len(), 2);
        assert_eq!(versions(Some("TLS13"), None).unwrap().len(), 1);
        assert!(versions(Some("TLS14"), None).is_err());
        assert!(cipher_suite("TLS_RSA_WITH_RC4_128_SHA").is_err());
        assert!(curve("CurveP521").is_err());
    }

    /// A CA, a server certificate and key it signed, and a stray key, as PEM files in a temporary directory.
    fn pem_files() -> tempfile::TempDir {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let dir = tempfile::tempdir().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_key = KeyPair::generate().unwrap();
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        let write = |name: &str, text: String| std::fs::write(dir.path().join(name), text).unwrap();
        write("ca.pem", ca_cert.pem());
        write("cert.pem", cert.pem());
        write("key.pem", key.serialize_pem());
        write(
            "other-key.pem",
            KeyPair::generate().unwrap().serialize_pem(),
        );
        dir
    }

    #[test]
    fn tls_from_files_relative_to_the_config_with_client_certificates() {
        let dir = pem_files();
        let tls = |extra: &str| {
            parse(
                &format!("tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n{extra}"),
                dir.path(),
            )
            .map_err(|e| format!("{e:#}"))
        };
        let c = tls("").unwrap();
        let config = c.tls.expect("TLS configured");
        assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
        assert!(tls("  min_version: TLS13\n  curve_preferences: [X25519]\n").is_ok());
        assert!(tls("  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256]\n").is_ok());
        assert!(tls("  client_ca_file: ca.pem\n").is_ok());
        assert!(
            tls("  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: ca.pem\n").is_ok()
        );
        let e = tls("  client_auth_type: RequireAndVerifyClientCert\n").unwrap_err();
        assert!(e.contains("needs client_ca_file"), "{e}");
        let e = tls("  client_auth_type: RequestClientCert\n").unwrap_err();
        assert!(e.contains("not supported"), "{e}");
        let e = tls("  client_auth_type: Sometimes\n").unwrap_err();
        assert!(e.contains("invalid client_auth_type 'Sometimes'"), "{e}");
        let e = tls("  client_allowed_sans: [a]\n  client_ca_file: ca.pem\n").unwrap_err();
        assert!(e.contains("client_allowed_sans is not supported"), "{e}");
        let e = tls("  cert: inline\n").unwrap_err();
        assert!(e.contains("both cert and cert_file"), "{e}");
        let e = parse(
            "tls_server_config:\n  cert_file: cert.pem\n  key_file: other-key.pem\n",
            dir.path(),
        )
        .map_err(|e| format!("{e:#}"))
        .unwrap_err();
        assert!(e.contains("do not make a usable pair"), "{e}");
        let e = parse(
            "tls_server_config:\n  cert_file: key.pem\n  key_file: key.pem\n",
            dir.path(),
        )
        .map_err(|e| format!("{e:#}"))
        .unwrap_err();
        assert!(e.contains("no PEM CERTIFICATE"), "{e}");
    }
}
