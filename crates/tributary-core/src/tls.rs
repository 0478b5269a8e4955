//! TLS to the source, shared by both sources: the libpq / Debezium settings
//! (`ssl_mode`, `ssl_ca`, `ssl_cert`, `ssl_key`), their validation, and the
//! one-line cause (with its fix) of a failed handshake, read from the rustls
//! error wherever a client library buried it.
//!
//! Every connection uses rustls with the aws-lc-rs provider. Without
//! `ssl_ca`, certificates are checked against the Mozilla root set bundled
//! in the binary (webpki-roots), the same set for the SQL sessions and the
//! replication stream.

use serde::Deserialize;
use std::path::{Path, PathBuf};

/// `source.*.ssl_mode`: the libpq names and meanings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    /// Never encrypt.
    Disable,
    /// Encrypt when the server offers TLS (certificate not checked), else plain.
    #[default]
    Prefer,
    /// Encrypt or fail; the certificate is not checked unless `ssl_ca` is set
    /// (then as `verify-ca`, like libpq).
    Require,
    /// Encrypt; the certificate chain must lead to `ssl_ca` (or a bundled root); any host name.
    VerifyCa,
    /// As `verify-ca`, and the certificate must name the host connected to.
    VerifyFull,
}

impl SslMode {
    /// The config spelling, e.g. `verify-full`.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// True when a connection without TLS is refused.
    pub fn requires_tls(self) -> bool {
        matches!(self, SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull)
    }
}

impl std::fmt::Display for SslMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The TLS settings of a source connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsConfig {
    pub ssl_mode: SslMode,
    /// PEM file of the CA(s) the server certificate must lead to.
    pub ssl_ca: Option<PathBuf>,
    /// PEM file of the client certificate (chain), with `ssl_key`.
    pub ssl_cert: Option<PathBuf>,
    /// PEM file of the client certificate's private key.
    pub ssl_key: Option<PathBuf>,
}

/// A TLS setting that cannot work; `field` is relative to the source section (e.g. `ssl_ca`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfigError {
    pub field: &'static str,
    pub problem: String,
}

impl TlsConfig {
    /// The mode connections really use: `require` with `ssl_ca` checks the
    /// chain, as libpq does.
    pub fn effective_mode(&self) -> SslMode {
        match self.ssl_mode {
            SslMode::Require if self.ssl_ca.is_some() => SslMode::VerifyCa,
            mode => mode,
        }
    }

    /// Checks that the files exist and hold PEM, and that the settings fit together.
    pub fn validate(&self) -> Result<(), TlsConfigError> {
        let error = |field, problem: String| Err(TlsConfigError { field, problem });
        if self.ssl_mode == SslMode::Disable {
            for (field, value) in [("ssl_ca", &self.ssl_ca), ("ssl_cert", &self.ssl_cert), ("ssl_key", &self.ssl_key)] {
                if value.is_some() {
                    return error(
                        field,
                        "is set but ssl_mode = \"disable\" never uses it; remove it or choose another ssl_mode".into(),
                    );
                }
            }
        }
        match (&self.ssl_cert, &self.ssl_key) {
            (Some(_), None) => {
                return error("ssl_key", "must be set with ssl_cert (the client certificate's key)".into())
            }
            (None, Some(_)) => return error("ssl_cert", "must be set with ssl_key (the client certificate)".into()),
            _ => {}
        }
        for (field, path, marker) in [
            ("ssl_ca", &self.ssl_ca, "CERTIFICATE"),
            ("ssl_cert", &self.ssl_cert, "CERTIFICATE"),
            ("ssl_key", &self.ssl_key, "PRIVATE KEY"),
        ] {
            let Some(path) = path else { continue };
            match std::fs::read_to_string(path) {
                Ok(text) if text.contains("-----BEGIN ") && text.contains(marker) => {}
                Ok(_) => return error(field, format!("{} holds no PEM {marker}", path.display())),
                Err(e) => return error(field, format!("cannot read {}: {e}", path.display())),
            }
        }
        Ok(())
    }
}

/// The negotiated protocol as the server reports it (`TLSv1.3`, `TLSv1.2`),
/// for people: `TLS 1.3`, or `not encrypted` when empty or absent.
pub fn describe_version(server_text: Option<&str>) -> String {
    match server_text.map(str::trim) {
        None | Some("") => "not encrypted".to_string(),
        Some(v) => match v.strip_prefix("TLSv") {
            Some(number) => format!("TLS {number}"),
            None => v.to_string(),
        },
    }
}

/// Installs aws-lc-rs as the process's rustls provider (once; later calls do
/// nothing). Client libraries that build their rustls config with
/// `ClientConfig::builder()` (mysql_async) need one, and the dependency tree
/// enables two providers, so rustls cannot pick one by itself.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// Why a TLS connection failed, with what fixes it (the `Display` text).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsFailure {
    /// The chain does not lead to a trusted CA.
    UnknownCa { ca: Option<PathBuf> },
    /// The certificate does not name the host connected to.
    HostnameMismatch { host: String, presented: Vec<String> },
    /// The certificate is expired or not yet valid.
    Validity { detail: String },
    /// The server does not offer TLS, and the mode needs it.
    ServerWithoutTls { mode: SslMode },
    /// The server accepts only encrypted connections, and the mode is `disable`.
    ServerRequiresTls,
    /// The server refused the handshake (typically the client certificate).
    RefusedByServer { detail: String },
    /// Anything else the handshake reported.
    Handshake { detail: String },
}

impl std::fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TlsFailure::UnknownCa { ca: Some(ca) } => write!(
                f,
                "the server's certificate is not signed by the CA in source.ssl_ca ({}); set ssl_ca to the PEM file of the CA that signed the server certificate",
                ca.display()
            ),
            TlsFailure::UnknownCa { ca: None } => f.write_str(
                "the server's certificate is not signed by a CA of the bundled Mozilla root set; set source.ssl_ca to the PEM file of the CA that signed the server certificate",
            ),
            TlsFailure::HostnameMismatch { host, presented } => {
                write!(f, "the server's certificate is not valid for host '{host}'")?;
                if !presented.is_empty() {
                    write!(f, " (it names {})", presented.join(", "))?;
                }
                f.write_str(
                    "; set source.host to a name the certificate was issued for, or use ssl_mode = \"verify-ca\" to check the CA only",
                )
            }
            TlsFailure::Validity { detail } => {
                write!(f, "the server's certificate is not valid now ({detail}); renew the server certificate")
            }
            TlsFailure::ServerWithoutTls { mode } => write!(
                f,
                "the server does not offer TLS but source.ssl_mode = \"{mode}\" requires it; enable TLS on the server, or set ssl_mode = \"prefer\" to accept an unencrypted connection"
            ),
            TlsFailure::ServerRequiresTls => f.write_str(
                "the server accepts only encrypted connections but source.ssl_mode = \"disable\"; set ssl_mode = \"verify-full\" (with ssl_ca) or \"require\"",
            ),
            TlsFailure::RefusedByServer { detail } => write!(
                f,
                "the server refused the TLS handshake ({detail}); if it requires a client certificate, set source.ssl_cert and source.ssl_key to one signed by a CA the server trusts"
            ),
            TlsFailure::Handshake { detail } => {
                write!(f, "TLS handshake failed ({detail}); check source.ssl_mode and the server's TLS settings")
            }
        }
    }
}

impl TlsFailure {
    /// The failure a rustls error somewhere in `error`'s chain describes
    /// (also inside an `std::io::Error`, where tokio-rustls puts it); `host`
    /// and `ca` name what was checked.
    pub fn from_error(error: &(dyn std::error::Error + 'static), host: &str, ca: Option<&Path>) -> Option<Self> {
        let mut next = Some(error);
        while let Some(e) = next {
            if let Some(tls) = e.downcast_ref::<rustls::Error>() {
                return Some(Self::from_rustls(tls, host, ca));
            }
            if let Some(tls) =
                e.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()).and_then(|i| i.downcast_ref())
            {
                return Some(Self::from_rustls(tls, host, ca));
            }
            next = e.source();
        }
        None
    }

    /// The failure `error` describes.
    pub fn from_rustls(error: &rustls::Error, host: &str, ca: Option<&Path>) -> Self {
        use rustls::CertificateError as C;
        match error {
            rustls::Error::InvalidCertificate(cert) => match cert {
                C::UnknownIssuer | C::BadSignature | C::UnknownRevocationStatus => {
                    TlsFailure::UnknownCa { ca: ca.map(Path::to_path_buf) }
                }
                C::NotValidForName => TlsFailure::HostnameMismatch { host: host.to_string(), presented: Vec::new() },
                C::NotValidForNameContext { presented, .. } => TlsFailure::HostnameMismatch {
                    host: host.to_string(),
                    presented: presented.iter().map(|p| presented_name(p)).collect(),
                },
                C::Expired | C::ExpiredContext { .. } | C::NotValidYet | C::NotValidYetContext { .. } => {
                    TlsFailure::Validity { detail: cert.to_string() }
                }
                other => TlsFailure::Handshake { detail: format!("invalid server certificate: {other}") },
            },
            rustls::Error::AlertReceived(alert) => TlsFailure::RefusedByServer { detail: format!("alert {alert:?}") },
            other => TlsFailure::Handshake { detail: other.to_string() },
        }
    }

    /// The failure a message of a client library that flattens rustls errors
    /// into text (pg_walstream; tokio-postgres for a server without TLS)
    /// describes, if any.
    pub fn from_text(text: &str, host: &str, ca: Option<&Path>, mode: SslMode) -> Option<Self> {
        if text.contains("UnknownIssuer") || text.contains("BadSignature") {
            Some(TlsFailure::UnknownCa { ca: ca.map(Path::to_path_buf) })
        } else if text.contains("not valid for name") || text.contains("NotValidForName") {
            Some(TlsFailure::HostnameMismatch { host: host.to_string(), presented: Vec::new() })
        } else if text.contains("certificate expired") || text.contains("not valid yet") {
            Some(TlsFailure::Validity { detail: text.to_string() })
        } else if text.contains("does not support SSL") || text.contains("does not support TLS") {
            Some(TlsFailure::ServerWithoutTls { mode })
        } else if text.contains("received fatal alert") {
            Some(TlsFailure::RefusedByServer { detail: text.to_string() })
        } else if text.contains("TLS handshake failed") {
            Some(TlsFailure::Handshake { detail: text.to_string() })
        } else {
            None
        }
    }

    /// For a certificate that does not name the host: the first name it
    /// does carry (a wildcard's parent with a label put in), usable as the
    /// name to verify against when only the chain must be checked.
    pub fn presented_host(&self) -> Option<String> {
        let TlsFailure::HostnameMismatch { presented, .. } = self else { return None };
        presented.first().map(|name| match name.strip_prefix("*.") {
            Some(parent) => format!("tributary-verify-ca.{parent}"),
            None => name.clone(),
        })
    }
}

/// `DnsName("db.example.com")` / `IpAddress(10.0.0.1)` (webpki's rendering) → the bare name.
fn presented_name(text: &str) -> String {
    for prefix in ["DnsName(\"", "IpAddress("] {
        if let Some(rest) = text.strip_prefix(prefix) {
            return rest.trim_end_matches(')').trim_end_matches('"').to_string();
        }
    }
    text.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_with_the_libpq_names_and_default_to_prefer() {
        #[derive(Deserialize)]
        struct S {
            #[serde(default)]
            m: SslMode,
        }
        let parse = |t: &str| serde_json::from_str::<S>(t).map(|s| s.m);
        assert_eq!(parse("{}").unwrap(), SslMode::Prefer);
        for mode in [SslMode::Disable, SslMode::Prefer, SslMode::Require, SslMode::VerifyCa, SslMode::VerifyFull] {
            assert_eq!(parse(&format!("{{\"m\": \"{mode}\"}}")).unwrap(), mode);
        }
        let err = parse(r#"{"m": "verify_full"}"#).unwrap_err().to_string();
        assert!(err.contains("verify-full"), "{err}");
    }

    #[test]
    fn require_with_a_ca_checks_the_chain() {
        let mut tls = TlsConfig { ssl_mode: SslMode::Require, ..Default::default() };
        assert_eq!(tls.effective_mode(), SslMode::Require);
        tls.ssl_ca = Some("/ca.pem".into());
        assert_eq!(tls.effective_mode(), SslMode::VerifyCa);
    }

    #[test]
    fn validate_names_missing_files_half_a_client_identity_and_unused_settings() {
        let dir = std::env::temp_dir().join(format!("tributary-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pem = dir.join("ca.pem");
        std::fs::write(&pem, "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n").unwrap();
        let junk = dir.join("junk.pem");
        std::fs::write(&junk, "hello").unwrap();

        let ok = TlsConfig { ssl_mode: SslMode::VerifyFull, ssl_ca: Some(pem.clone()), ..Default::default() };
        ok.validate().unwrap();
        let missing = TlsConfig { ssl_ca: Some(dir.join("nope.pem")), ..ok.clone() };
        let e = missing.validate().unwrap_err();
        assert_eq!(e.field, "ssl_ca");
        assert!(e.problem.contains("nope.pem") && e.problem.contains("cannot read"), "{e:?}");
        let e = TlsConfig { ssl_ca: Some(junk), ..ok.clone() }.validate().unwrap_err();
        assert!(e.problem.contains("no PEM CERTIFICATE"), "{e:?}");
        let e = TlsConfig { ssl_cert: Some(pem.clone()), ..ok.clone() }.validate().unwrap_err();
        assert_eq!(e.field, "ssl_key");
        let e = TlsConfig { ssl_mode: SslMode::Disable, ..ok }.validate().unwrap_err();
        assert!(e.field == "ssl_ca" && e.problem.contains("disable"), "{e:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn rustls_errors_become_a_cause_and_a_fix() {
        let unknown = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, unknown);
        let failure = TlsFailure::from_error(&io, "db", Some(Path::new("/etc/ca.pem"))).unwrap();
        let text = failure.to_string();
        assert!(text.contains("not signed by the CA in source.ssl_ca (/etc/ca.pem)"), "{text}");

        let name = rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForNameContext {
            expected: rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap().to_owned(),
            presented: vec!["DnsName(\"localhost\")".into(), "IpAddress(10.0.0.1)".into()],
        });
        let failure = TlsFailure::from_rustls(&name, "127.0.0.1", None);
        let text = failure.to_string();
        assert!(text.contains("not valid for host '127.0.0.1' (it names localhost, 10.0.0.1)"), "{text}");
        assert!(text.contains("verify-ca"), "{text}");
        assert_eq!(failure.presented_host().as_deref(), Some("localhost"));
        assert!(!text.contains('\n'));
    }

    #[test]
    fn flattened_messages_are_classified_too() {
        let f = TlsFailure::from_text(
            "TLS handshake failed: invalid peer certificate: UnknownIssuer",
            "h",
            None,
            SslMode::VerifyFull,
        );
        assert_eq!(f, Some(TlsFailure::UnknownCa { ca: None }));
        let f = TlsFailure::from_text("Server does not support SSL but sslmode=require", "h", None, SslMode::Require);
        assert_eq!(f, Some(TlsFailure::ServerWithoutTls { mode: SslMode::Require }));
        let f = TlsFailure::from_text(
            "error performing TLS handshake: server does not support TLS",
            "h",
            None,
            SslMode::VerifyCa,
        );
        assert_eq!(f, Some(TlsFailure::ServerWithoutTls { mode: SslMode::VerifyCa }));
        assert_eq!(TlsFailure::from_text("connection refused", "h", None, SslMode::Require), None);
    }

    #[test]
    fn versions_read_as_people_write_them() {
        assert_eq!(describe_version(Some("TLSv1.3")), "TLS 1.3");
        assert_eq!(describe_version(Some("")), "not encrypted");
        assert_eq!(describe_version(None), "not encrypted");
    }
}
