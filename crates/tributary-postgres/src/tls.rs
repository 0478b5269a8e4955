//! TLS for the SQL sessions (tokio-postgres), as `source.ssl_mode` asks: a
//! small rustls connector (aws-lc-rs provider; no OpenSSL) with the
//! certificate checks of each libpq mode. The replication session gets the
//! same settings through its conninfo ([`crate::connect::replication_conninfo`]);
//! pg_walstream does the same checks with its own rustls connector.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};
use tributary_core::{SslMode, TlsConfig};

/// A problem with the TLS files, found while building the client config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSetupError {
    /// `ssl_ca`, `ssl_cert` or `ssl_key`.
    pub field: &'static str,
    pub problem: String,
}

/// The tokio-postgres connector of a [`TlsConfig`].
#[derive(Clone)]
pub struct RustlsConnect {
    config: Arc<ClientConfig>,
}

impl RustlsConnect {
    /// The connector for `tls` (its [`TlsConfig::effective_mode`]); `disable` gets one that is never used.
    pub fn new(tls: &TlsConfig) -> Result<Self, TlsSetupError> {
        Ok(RustlsConnect { config: Arc::new(client_config(tls)?) })
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The rustls client config of `tls`: no certificate check for `prefer` /
/// `require`; the chain against `ssl_ca` (or the bundled Mozilla roots) for
/// `verify-ca`, and also the host name for `verify-full`; the client
/// certificate when set.
pub fn client_config(tls: &TlsConfig) -> Result<ClientConfig, TlsSetupError> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsSetupError { field: "ssl_mode", problem: e.to_string() })?;
    let verifier: Arc<dyn ServerCertVerifier> = match tls.effective_mode() {
        SslMode::Disable | SslMode::Prefer | SslMode::Require => Arc::new(NoCertificateCheck(provider)),
        mode @ (SslMode::VerifyCa | SslMode::VerifyFull) => {
            let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots(tls)?), provider)
                .build()
                .map_err(|e| TlsSetupError { field: "ssl_ca", problem: e.to_string() })?;
            if mode == SslMode::VerifyCa {
                Arc::new(ChainOnly(webpki))
            } else {
                webpki
            }
        }
    };
    let builder = builder.dangerous().with_custom_certificate_verifier(verifier);
    match (&tls.ssl_cert, &tls.ssl_key) {
        (Some(cert), Some(key)) => {
            let chain = read_pem(cert, "ssl_cert", |p| CertificateDer::pem_file_iter(p).and_then(Iterator::collect))?;
            let key = read_pem(key, "ssl_key", |p| PrivateKeyDer::from_pem_file(p))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| TlsSetupError { field: "ssl_cert", problem: e.to_string() })
        }
        _ => Ok(builder.with_no_client_auth()),
    }
}

use rustls::pki_types::pem::PemObject;

fn read_pem<T>(
    path: &std::path::Path,
    field: &'static str,
    read: impl FnOnce(&std::path::Path) -> Result<T, rustls::pki_types::pem::Error>,
) -> Result<T, TlsSetupError> {
    read(path).map_err(|e| TlsSetupError { field, problem: format!("cannot read PEM from {}: {e}", path.display()) })
}

/// The CAs of `ssl_ca`, else the Mozilla root set bundled in the binary (as
/// pg_walstream and mysql_async use).
fn roots(tls: &TlsConfig) -> Result<RootCertStore, TlsSetupError> {
    let mut store = RootCertStore::empty();
    match &tls.ssl_ca {
        Some(ca) => {
            let certs: Vec<CertificateDer<'static>> =
                read_pem(ca, "ssl_ca", |p| CertificateDer::pem_file_iter(p).and_then(Iterator::collect))?;
            let (added, _) = store.add_parsable_certificates(certs);
            if added == 0 {
                return Err(TlsSetupError {
                    field: "ssl_ca",
                    problem: format!("{} holds no usable CA certificate", ca.display()),
                });
            }
        }
        None => store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    Ok(store)
}

/// `prefer` / `require`: encryption without a certificate check (libpq's
/// meaning); handshake signatures are still checked.
#[derive(Debug)]
struct NoCertificateCheck(Arc<CryptoProvider>);

impl ServerCertVerifier for NoCertificateCheck {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain must lead to a trusted CA; the name is not checked.
/// webpki checks the chain before the name, so a name error means the chain passed.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName | rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

impl<S> MakeTlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type TlsConnect = RustlsConnectOne;
    type Error = io::Error;

    fn make_tls_connect(&mut self, domain: &str) -> io::Result<RustlsConnectOne> {
        let name = ServerName::try_from(domain.to_string())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("host {domain:?}: {e}")))?;
        Ok(RustlsConnectOne { connector: tokio_rustls::TlsConnector::from(self.config.clone()), name })
    }
}

/// One handshake, to the host it was made for.
pub struct RustlsConnectOne {
    connector: tokio_rustls::TlsConnector,
    name: ServerName<'static>,
}

impl<S> TlsConnect<S> for RustlsConnectOne
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move { self.connector.connect(self.name, stream).await.map(RustlsStream) })
    }
}

/// An encrypted session stream.
pub struct RustlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for RustlsStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        // SCRAM then authenticates without channel binding, as with libpq's channel_binding=prefer
        // against a server that does not offer it.
        ChannelBinding::none()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mode_builds_a_config_and_a_bad_ca_file_names_its_field() {
        for mode in [SslMode::Disable, SslMode::Prefer, SslMode::Require, SslMode::VerifyCa, SslMode::VerifyFull] {
            client_config(&TlsConfig { ssl_mode: mode, ..Default::default() }).unwrap();
        }
        let missing = TlsConfig {
            ssl_mode: SslMode::VerifyFull,
            ssl_ca: Some("/nonexistent/ca.pem".into()),
            ..Default::default()
        };
        let err = client_config(&missing).unwrap_err();
        assert_eq!(err.field, "ssl_ca");
        assert!(err.problem.contains("/nonexistent/ca.pem"), "{err:?}");
    }
}
