//! Test certificates, made with the `openssl` CLI in a test's temp dir: a CA
//! and server certificates it signs (P-256 keys, valid for two days), for
//! servers started with TLS ([`ServerTls`]) and for "wrong CA" tests.

use crate::TestKitError;
use std::path::{Path, PathBuf};
use std::process::Command;

/// TLS settings of a test server (MariaDB or PostgreSQL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTls {
    /// subjectAltName entries of the server certificate, e.g. `DNS:localhost`, `IP:127.0.0.1`.
    pub names: Vec<String>,
    /// Refuse unencrypted TCP connections (MariaDB `require_secure_transport=ON`;
    /// PostgreSQL: `hostssl`-only pg_hba.conf, replication included).
    pub require: bool,
}

impl ServerTls {
    /// A server that accepts TCP connections only with TLS, whose certificate
    /// names `localhost` only (so connecting to 127.0.0.1 is a host name mismatch).
    pub fn required_for_localhost() -> Self {
        ServerTls { names: vec!["DNS:localhost".into()], require: true }
    }
}

/// A certificate and its private key (PEM files).
#[derive(Debug, Clone)]
pub struct CertPair {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A self-signed test CA.
#[derive(Debug, Clone)]
pub struct TestCa {
    /// The CA certificate (what a client's `ssl_ca` points at).
    pub cert: PathBuf,
    key: PathBuf,
    dir: PathBuf,
    name: String,
}

impl TestCa {
    /// Makes a CA named `name` in `dir` (files `<name>-ca.pem` / `<name>-ca.key`).
    pub fn generate(dir: &Path, name: &str) -> Result<Self, TestKitError> {
        let cert = dir.join(format!("{name}-ca.pem"));
        let key = dir.join(format!("{name}-ca.key"));
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN=Tributary test CA {name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout",
            path(&key),
            "-out",
            path(&cert),
        ])?;
        Ok(TestCa { cert, key, dir: dir.to_path_buf(), name: name.to_string() })
    }

    /// A server certificate for `names` (subjectAltName entries such as
    /// `DNS:localhost`), signed by this CA; files `<name>-<file>.pem` / `.key`.
    pub fn issue(&self, file: &str, names: &[String]) -> Result<CertPair, TestKitError> {
        let base = self.dir.join(format!("{}-{file}", self.name));
        let (cert, key, csr, ext) = (
            base.with_extension("pem"),
            base.with_extension("key"),
            base.with_extension("csr"),
            base.with_extension("ext"),
        );
        let cn = names.first().and_then(|n| n.split_once(':')).map_or("server", |(_, v)| v);
        openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            &format!("/CN={cn}"),
            "-keyout",
            path(&key),
            "-out",
            path(&csr),
        ])?;
        let extensions = format!(
            "subjectAltName={}\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n",
            names.join(",")
        );
        std::fs::write(&ext, extensions)
            .map_err(|source| TestKitError::Io { context: format!("write {}", ext.display()), source })?;
        openssl(&[
            "x509",
            "-req",
            "-in",
            path(&csr),
            "-CA",
            path(&self.cert),
            "-CAkey",
            path(&self.key),
            "-set_serial",
            &format!("0x{}", uuid::Uuid::new_v4().simple()),
            "-days",
            "2",
            "-extfile",
            path(&ext),
            "-out",
            path(&cert),
        ])?;
        Ok(CertPair { cert, key })
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("test paths are UTF-8")
}

fn openssl(args: &[&str]) -> Result<(), TestKitError> {
    let out = Command::new("openssl").args(args).output().map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => {
            TestKitError::MissingBinary { binary: "openssl".into(), package: "openssl".into() }
        }
        _ => TestKitError::Io { context: "run openssl".into(), source },
    })?;
    if !out.status.success() {
        return Err(TestKitError::Start {
            what: format!("openssl {}", args[..2].join(" ")),
            detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(())
}

/// The CA and server certificate of a test server started with [`ServerTls`].
#[derive(Debug, Clone)]
pub struct ServerCerts {
    pub ca: TestCa,
    pub server: CertPair,
}

impl ServerCerts {
    /// Makes a CA (`server`) and a certificate for `tls.names` in `dir`.
    pub fn generate(dir: &Path, tls: &ServerTls) -> Result<Self, TestKitError> {
        let ca = TestCa::generate(dir, "server")?;
        let server = ca.issue("cert", &tls.names)?;
        Ok(ServerCerts { ca, server })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_issues_a_certificate_with_the_requested_names() {
        let dir = tempfile::tempdir().unwrap();
        let certs = match ServerCerts::generate(dir.path(), &ServerTls::required_for_localhost()) {
            Ok(c) => c,
            Err(e) => return assert!(!crate::in_ci(), "{e}"),
        };
        let text = Command::new("openssl")
            .args(["x509", "-noout", "-text", "-in", path(&certs.server.cert)])
            .output()
            .unwrap()
            .stdout;
        let text = String::from_utf8_lossy(&text);
        assert!(text.contains("DNS:localhost"), "{text}");
        let verify = Command::new("openssl")
            .args(["verify", "-CAfile", path(&certs.ca.cert), path(&certs.server.cert)])
            .output()
            .unwrap();
        assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stderr));
    }
}
