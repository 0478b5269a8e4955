//! A session to the source: client options and the connection itself (a
//! refused login, an unreachable server or a failed TLS handshake named as
//! such), TLS as `source.ssl_mode` asks, which server it is (flavor and
//! version), the current end of its binlog, and reading the columns of
//! result rows. Preflight, schema loading, snapshot, streaming and the
//! binary's own sessions all connect through here, so every one of them
//! (the binlog stream included) has the same TLS.

use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{ClientIdentity, Conn, Opts, OptsBuilder, Row, SslOpts};
use tributary_core::{tls, Gtid, MySqlPosition, SslMode, TlsFailure};

use crate::config::MySqlSourceConfig;
use crate::error::MySqlError;

/// Largest packet the client accepts: a binlog dump thread sends events up to 1 GiB.
const MAX_PACKET_BYTES: usize = 1 << 30;
/// Server error: access denied for user (wrong password or unknown user).
const ER_ACCESS_DENIED: u16 = 1045;
/// Server error: an unencrypted connection to a server with `require_secure_transport=ON` (MySQL).
const ER_SECURE_TRANSPORT_REQUIRED_MYSQL: u16 = 3159;
/// The same on MariaDB.
const ER_SECURE_TRANSPORT_REQUIRED_MARIADB: u16 = 4036;
/// Server error: a statement needs a privilege the user lacks (e.g. SHOW MASTER STATUS,
/// FLUSH TABLES WITH READ LOCK).
pub(crate) const ER_SPECIFIC_ACCESS_DENIED: u16 = 1227;

/// Which server family the source is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    MySql,
    MariaDb,
}

/// What the server says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    pub flavor: Flavor,
    /// `(major, minor, patch)`.
    pub version: (u16, u16, u16),
    /// `SELECT VERSION()` verbatim, e.g. `10.11.6-MariaDB-log`.
    pub version_text: String,
}

impl ServerInfo {
    /// Parses `SELECT VERSION()`.
    pub fn from_version_text(text: &str) -> Result<Self, MySqlError> {
        let flavor = if text.to_ascii_lowercase().contains("mariadb") { Flavor::MariaDb } else { Flavor::MySql };
        let numeric = text.split(|c: char| !(c.is_ascii_digit() || c == '.')).next().unwrap_or("");
        let mut parts = numeric.split('.').map(|p| p.parse::<u16>());
        let mut next = || parts.next().and_then(Result::ok);
        match (next(), next(), next()) {
            (Some(major), Some(minor), patch) => {
                Ok(ServerInfo { flavor, version: (major, minor, patch.unwrap_or(0)), version_text: text.to_string() })
            }
            _ => Err(protocol("reading the server version", format!("cannot parse VERSION() = {text:?}"))),
        }
    }

    /// True from `(major, minor)` on.
    pub fn at_least(&self, major: u16, minor: u16) -> bool {
        (self.version.0, self.version.1) >= (major, minor)
    }

    /// MySQL 8.2+ renamed SHOW MASTER STATUS (removed in 8.4).
    fn binlog_status_statement(&self) -> &'static str {
        match self.flavor {
            Flavor::MySql if self.at_least(8, 2) => "SHOW BINARY LOG STATUS",
            _ => "SHOW MASTER STATUS",
        }
    }
}

/// Client options for `cfg`: TCP only (never the local socket), the password
/// from the [`tributary_core::Secret`], TLS as the first attempt of
/// [`connect`] makes it. Never `Debug`-print the result: it holds the password.
pub fn mysql_opts(cfg: &MySqlSourceConfig) -> Opts {
    opts_with_tls(cfg, ssl_opts(cfg, None))
}

fn opts_with_tls(cfg: &MySqlSourceConfig, ssl: Option<SslOpts>) -> Opts {
    let password = (!cfg.password.is_empty()).then(|| cfg.password.expose().to_string());
    OptsBuilder::default()
        .ip_or_hostname(cfg.host.clone())
        .tcp_port(cfg.port)
        .user(Some(cfg.user.clone()))
        .pass(password)
        .prefer_socket(false)
        .tcp_nodelay(true)
        .max_allowed_packet(Some(MAX_PACKET_BYTES))
        .ssl_opts(ssl)
        .into()
}

/// The TLS options of `source.ssl_mode` (`None`: no TLS). `prefer` and
/// `require` encrypt without checking the certificate; `verify-ca` and
/// `verify-full` check the chain against `ssl_ca` only (when set) or the
/// bundled Mozilla roots, and the name: the host, or `verify_name` (see
/// [`connect`] for why `verify-ca` needs one).
fn ssl_opts(cfg: &MySqlSourceConfig, verify_name: Option<String>) -> Option<SslOpts> {
    let tls = cfg.tls();
    let identity = match (&tls.ssl_cert, &tls.ssl_key) {
        (Some(cert), Some(key)) => Some(ClientIdentity::new(cert.clone().into(), key.clone().into())),
        _ => None,
    };
    let opts = SslOpts::default().with_client_identity(identity);
    match tls.effective_mode() {
        SslMode::Disable => None,
        SslMode::Prefer | SslMode::Require => Some(opts.with_danger_accept_invalid_certs(true)),
        SslMode::VerifyCa | SslMode::VerifyFull => {
            let roots = tls.ssl_ca.iter().map(|ca| ca.clone().into()).collect();
            Some(
                opts.with_root_certs(roots)
                    .with_disable_built_in_roots(tls.ssl_ca.is_some())
                    .with_danger_tls_hostname_override(verify_name),
            )
        }
    }
}

/// Opens one connection, mapping a refused login to [`MySqlError::AccessDenied`],
/// an unreachable server or a timeout to [`MySqlError::Connect`] and a TLS
/// problem to [`MySqlError::Tls`].
///
/// `prefer` falls back to an unencrypted connection when the server offers no
/// TLS or the handshake fails, as libpq does. `verify-ca` checks the chain
/// only: mysql_async cannot skip the name check with this rustls (it matches
/// an error text rustls no longer prints), so when the certificate, verified
/// up to the CA, does not name the host, the connection is made again
/// verifying it against a name it does carry, which checks the same chain.
/// Under `disable`, a refused login is tried once more encrypted, because
/// MariaDB refuses an unencrypted login to a TLS-only server as if the
/// password were wrong.
pub async fn connect(cfg: &MySqlSourceConfig) -> Result<Conn, MySqlError> {
    tls::install_crypto_provider();
    let mode = cfg.tls().effective_mode();
    let error = match attempt(cfg, ssl_opts(cfg, None)).await? {
        Ok(conn) => return Ok(conn),
        Err(error) => error,
    };
    let failure = tls_failure(cfg, &error);
    let retry = match (mode, &failure) {
        (SslMode::Prefer, Some(TlsFailure::ServerWithoutTls { .. } | TlsFailure::Handshake { .. })) => {
            tracing::debug!(error = %error, "the server offers no TLS (ssl_mode = prefer): connecting unencrypted");
            Some(None)
        }
        (SslMode::VerifyCa, Some(failure @ TlsFailure::HostnameMismatch { .. })) => {
            failure.presented_host().map(|name| ssl_opts(cfg, Some(name)))
        }
        (SslMode::Disable, None) if is_access_denied(&error) => {
            // MariaDB answers an unencrypted login to a server with
            // require_secure_transport=ON as a wrong password (1045): see
            // whether the same login works encrypted, to name the real cause.
            let encrypted = SslOpts::default().with_danger_accept_invalid_certs(true);
            if let Ok(Ok(conn)) = attempt(cfg, Some(encrypted)).await {
                let _ = conn.disconnect().await;
                return Err(MySqlError::Tls { address: cfg.address(), failure: TlsFailure::ServerRequiresTls });
            }
            None
        }
        _ => None,
    };
    match retry {
        Some(ssl) => attempt(cfg, ssl).await?.map_err(|e| connect_error(cfg, e)),
        None => Err(connect_error(cfg, error)),
    }
}

fn is_access_denied(e: &mysql_async::Error) -> bool {
    matches!(e, mysql_async::Error::Server(s) if s.code == ER_ACCESS_DENIED)
}

/// One connection attempt within `source.connect_timeout_secs`.
async fn attempt(
    cfg: &MySqlSourceConfig,
    ssl: Option<SslOpts>,
) -> Result<Result<Conn, mysql_async::Error>, MySqlError> {
    let timeout = Duration::from_secs(cfg.connect_timeout_secs);
    tokio::time::timeout(timeout, Conn::new(opts_with_tls(cfg, ssl))).await.map_err(|_| MySqlError::Connect {
        address: cfg.address(),
        reason: format!("no answer within {} s (source.connect_timeout_secs)", cfg.connect_timeout_secs),
    })
}

/// The TLS problem `e` reports, if it is one.
fn tls_failure(cfg: &MySqlSourceConfig, e: &mysql_async::Error) -> Option<TlsFailure> {
    let tls = cfg.tls();
    let mode = tls.effective_mode();
    match e {
        mysql_async::Error::Driver(mysql_async::DriverError::NoClientSslFlagFromServer) => {
            Some(TlsFailure::ServerWithoutTls { mode })
        }
        mysql_async::Error::Server(s)
            if s.code == ER_SECURE_TRANSPORT_REQUIRED_MYSQL
                || s.code == ER_SECURE_TRANSPORT_REQUIRED_MARIADB
                || s.message.contains("insecure transport") =>
        {
            Some(TlsFailure::ServerRequiresTls)
        }
        mysql_async::Error::Io(mysql_async::IoError::Tls(mysql_async::TlsError::Tls(r))) => {
            Some(TlsFailure::from_rustls(r, &cfg.host, tls.ssl_ca.as_deref()))
        }
        mysql_async::Error::Io(mysql_async::IoError::Tls(other)) => {
            Some(TlsFailure::Handshake { detail: other.to_string() })
        }
        _ if mode == SslMode::Disable => None,
        _ => TlsFailure::from_error(e, &cfg.host, tls.ssl_ca.as_deref()),
    }
}

fn connect_error(cfg: &MySqlSourceConfig, e: mysql_async::Error) -> MySqlError {
    if let Some(failure) = tls_failure(cfg, &e) {
        return MySqlError::Tls { address: cfg.address(), failure };
    }
    match e {
        mysql_async::Error::Server(s) if s.code == ER_ACCESS_DENIED => {
            MySqlError::AccessDenied { user: cfg.user.clone() }
        }
        mysql_async::Error::Server(s) => MySqlError::Connect { address: cfg.address(), reason: s.message },
        mysql_async::Error::Io(io) => MySqlError::Connect { address: cfg.address(), reason: io.to_string() },
        other => MySqlError::query(format!("connecting to {}", cfg.address()), other),
    }
}

/// The negotiated TLS version of the session, e.g. `TLS 1.3`, or `not encrypted`.
pub async fn tls_version(conn: &mut Conn) -> Result<String, MySqlError> {
    const CONTEXT: &str = "reading the session's TLS version";
    let row: Option<Row> =
        conn.query_first("SHOW SESSION STATUS LIKE 'Ssl_version'").await.map_err(|e| MySqlError::query(CONTEXT, e))?;
    let version = match row {
        Some(row) => Some(row_text(&row, 1, CONTEXT)?),
        None => None,
    };
    Ok(tls::describe_version(version.as_deref()))
}

/// A [`MySqlError::Protocol`] for an answer the server should not have given.
pub(crate) fn protocol(context: &str, detail: impl Into<String>) -> MySqlError {
    MySqlError::Protocol { context: context.to_string(), detail: detail.into() }
}

/// Column `idx` of `row` as text; NULL or a missing column is a protocol error.
pub(crate) fn row_text(row: &Row, idx: usize, context: &str) -> Result<String, MySqlError> {
    match row.as_ref(idx) {
        Some(mysql_async::Value::Bytes(b)) => {
            String::from_utf8(b.clone()).map_err(|_| protocol(context, format!("column {idx} is not UTF-8")))
        }
        Some(mysql_async::Value::Int(i)) => Ok(i.to_string()),
        Some(mysql_async::Value::UInt(u)) => Ok(u.to_string()),
        other => Err(protocol(context, format!("column {idx} is {other:?}, expected text"))),
    }
}

/// Column `idx` of `row` as an unsigned number, `None` for NULL.
pub(crate) fn row_u64(row: &Row, idx: usize, context: &str) -> Result<Option<u64>, MySqlError> {
    match row.as_ref(idx) {
        Some(mysql_async::Value::NULL) => Ok(None),
        Some(_) => {
            let text = row_text(row, idx, context)?;
            text.parse().map(Some).map_err(|_| protocol(context, format!("column {idx} = {text:?} is not a number")))
        }
        None => Err(protocol(context, format!("missing column {idx}"))),
    }
}

/// Flavor and version of the connected server.
pub async fn server_info(conn: &mut Conn) -> Result<ServerInfo, MySqlError> {
    const CONTEXT: &str = "reading the server version";
    let row: Option<Row> = conn.query_first("SELECT VERSION()").await.map_err(|e| MySqlError::query(CONTEXT, e))?;
    let row = row.ok_or_else(|| protocol(CONTEXT, "SELECT VERSION() returned no row"))?;
    ServerInfo::from_version_text(&row_text(&row, 0, CONTEXT)?)
}

/// The current end of the binlog (SHOW MASTER STATUS / SHOW BINARY LOG STATUS).
pub async fn binlog_status(conn: &mut Conn, info: &ServerInfo, user: &str) -> Result<MySqlPosition, MySqlError> {
    const CONTEXT: &str = "reading the binlog position";
    let statement = info.binlog_status_statement();
    let rows: Vec<Row> = match conn.query(statement).await {
        Ok(rows) => rows,
        Err(mysql_async::Error::Server(s)) if s.code == ER_SPECIFIC_ACCESS_DENIED => {
            return Err(missing_client_privilege(user));
        }
        Err(e) => return Err(MySqlError::query(format!("{CONTEXT} ({statement})"), e)),
    };
    let Some(row) = rows.first() else {
        return Err(log_bin_off("OFF"));
    };
    let file = row_text(row, 0, CONTEXT)?;
    let offset = row_u64(row, 1, CONTEXT)?.ok_or_else(|| protocol(CONTEXT, "binlog position is NULL"))?;
    Ok(MySqlPosition::new(file, offset))
}

/// `position` labelled with the GTID of the last transaction before it, on
/// MariaDB when the binlog holds one replication domain (`BINLOG_GTID_POS`,
/// exact for any point of the binlog, not "now"): what lets a table's
/// position continue on a promoted replica ([`crate::gtid`]). The server
/// reads the binlog file up to the position for it, so this labels the
/// positions a table starts from (snapshot, `snapshot = "never"`), not every check.
pub async fn label_with_gtid(
    conn: &mut Conn,
    info: &ServerInfo,
    mut position: MySqlPosition,
) -> Result<MySqlPosition, MySqlError> {
    if info.flavor == Flavor::MariaDb {
        position.gtid = mariadb_gtid_at(conn, &position).await?;
    }
    Ok(position)
}

pub(crate) async fn mariadb_gtid_at(conn: &mut Conn, position: &MySqlPosition) -> Result<Option<Gtid>, MySqlError> {
    const CONTEXT: &str = "reading the GTID position of the binlog position";
    let text: Option<Option<String>> = conn
        .exec_first("SELECT BINLOG_GTID_POS(?, ?)", (position.file.as_str(), position.offset))
        .await
        .map_err(|e| MySqlError::query(CONTEXT, e))?;
    let state = crate::gtid::parse_state(text.flatten().as_deref().unwrap_or("")).map_err(|d| protocol(CONTEXT, d))?;
    Ok(crate::gtid::single_domain(&state))
}

fn missing_client_privilege(user: &str) -> MySqlError {
    MySqlError::MissingPrivilege { user: user.to_string(), privilege: "REPLICATION CLIENT".into(), on: "*.*".into() }
}

pub(crate) fn log_bin_off(found: &str) -> MySqlError {
    MySqlError::Setting {
        name: "log_bin".into(),
        found: found.into(),
        expected: "ON".into(),
        fix: "add `log_bin=mysql-bin` and `server_id=1` under [mysqld] in my.cnf and restart the server (log_bin is not dynamic)"
            .into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(version: &str) -> ServerInfo {
        ServerInfo::from_version_text(version).unwrap()
    }

    #[test]
    fn parses_versions_and_flavors() {
        let m = server("10.11.6-MariaDB-0+deb12u1-log");
        assert_eq!((m.flavor, m.version), (Flavor::MariaDb, (10, 11, 6)));
        let my = server("8.0.36");
        assert_eq!((my.flavor, my.version), (Flavor::MySql, (8, 0, 36)));
        assert!(my.at_least(8, 0) && !my.at_least(8, 2));
        assert!(ServerInfo::from_version_text("garbage").is_err());
    }

    #[test]
    fn binlog_status_statement_follows_the_version() {
        assert_eq!(server("8.4.0").binlog_status_statement(), "SHOW BINARY LOG STATUS");
        assert_eq!(server("8.0.36").binlog_status_statement(), "SHOW MASTER STATUS");
        assert_eq!(server("11.4.2-MariaDB").binlog_status_statement(), "SHOW MASTER STATUS");
    }

    #[test]
    fn mysql_opts_use_tcp_and_the_secret() {
        let cfg = MySqlSourceConfig::new("cdc", vec!["a.*".into()]).with_password_override(Some("pw".into()));
        let opts = mysql_opts(&cfg);
        assert_eq!(opts.ip_or_hostname(), "127.0.0.1");
        assert_eq!(opts.tcp_port(), 3306);
        assert_eq!(opts.pass(), Some("pw"));
        assert!(!opts.prefer_socket());
        // ssl_mode defaults to prefer: TLS is tried, the certificate not checked.
        let ssl = opts.ssl_opts().expect("TLS is tried by default");
        assert!(ssl.accept_invalid_certs());
    }

    #[test]
    fn ssl_mode_chooses_what_is_checked() {
        let mut cfg = MySqlSourceConfig::new("cdc", vec!["a.*".into()]);
        cfg.ssl_mode = SslMode::Disable;
        assert!(mysql_opts(&cfg).ssl_opts().is_none());
        cfg.ssl_mode = SslMode::Require;
        assert!(mysql_opts(&cfg).ssl_opts().unwrap().accept_invalid_certs());
        cfg.ssl_ca = Some("/etc/ca.pem".into());
        let ssl = mysql_opts(&cfg).ssl_opts().unwrap().clone();
        assert!(!ssl.accept_invalid_certs(), "require with ssl_ca checks the chain, as libpq");
        assert!(ssl.disable_built_in_roots(), "only the CA of ssl_ca is trusted");
        cfg.ssl_mode = SslMode::VerifyFull;
        cfg.ssl_ca = None;
        let ssl = mysql_opts(&cfg).ssl_opts().unwrap().clone();
        assert!(!ssl.accept_invalid_certs() && !ssl.disable_built_in_roots() && !ssl.skip_domain_validation());
        assert_eq!(ssl.tls_hostname_override(), None);
    }
}
