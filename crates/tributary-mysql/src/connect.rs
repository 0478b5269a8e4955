//! A session to the source: client options and the connection itself (a
//! refused login or an unreachable server named as such), which server it is
//! (flavor and version), the current end of its binlog, and reading the
//! columns of result rows. Preflight, schema loading, snapshot, streaming and
//! the binary's own sessions all connect through here.

use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder, Row};
use tributary_core::MySqlPosition;

use crate::config::MySqlSourceConfig;
use crate::error::MySqlError;

/// Largest packet the client accepts: a binlog dump thread sends events up to 1 GiB.
const MAX_PACKET_BYTES: usize = 1 << 30;
/// Server error: access denied for user (wrong password or unknown user).
const ER_ACCESS_DENIED: u16 = 1045;
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
/// from the [`tributary_core::Secret`]. Never `Debug`-print the result: it holds the password.
pub fn mysql_opts(cfg: &MySqlSourceConfig) -> Opts {
    let password = (!cfg.password.is_empty()).then(|| cfg.password.expose().to_string());
    OptsBuilder::default()
        .ip_or_hostname(cfg.host.clone())
        .tcp_port(cfg.port)
        .user(Some(cfg.user.clone()))
        .pass(password)
        .prefer_socket(false)
        .tcp_nodelay(true)
        .max_allowed_packet(Some(MAX_PACKET_BYTES))
        .into()
}

/// Opens one connection, mapping a refused login to [`MySqlError::AccessDenied`]
/// and an unreachable server or a timeout to [`MySqlError::Connect`].
pub async fn connect(cfg: &MySqlSourceConfig) -> Result<Conn, MySqlError> {
    let timeout = Duration::from_secs(cfg.connect_timeout_secs);
    match tokio::time::timeout(timeout, Conn::new(mysql_opts(cfg))).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(connect_error(cfg, e)),
        Err(_) => Err(MySqlError::Connect {
            address: cfg.address(),
            reason: format!("no answer within {} s (source.connect_timeout_secs)", cfg.connect_timeout_secs),
        }),
    }
}

fn connect_error(cfg: &MySqlSourceConfig, e: mysql_async::Error) -> MySqlError {
    match e {
        mysql_async::Error::Server(s) if s.code == ER_ACCESS_DENIED => {
            MySqlError::AccessDenied { user: cfg.user.clone() }
        }
        mysql_async::Error::Server(s) => MySqlError::Connect { address: cfg.address(), reason: s.message },
        mysql_async::Error::Io(io) => MySqlError::Connect { address: cfg.address(), reason: io.to_string() },
        other => MySqlError::query(format!("connecting to {}", cfg.address()), other),
    }
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
    }
}
