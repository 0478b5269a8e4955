//! The `[source]` section for a MySQL / MariaDB source: connection, replica
//! identity, table filters and snapshot mode, with named defaults and a
//! `validate()` that names the failing field.

use serde::Deserialize;
use std::path::PathBuf;
use tributary_core::{Secret, TlsConfig};
pub use tributary_core::{SnapshotMethod, SnapshotMode, SslMode, DEFAULT_SNAPSHOT_PARALLELISM, PASSWORD_ENV};

use crate::error::MySqlError;
use tributary_core::TableFilter;

/// Default server host: the local machine over TCP.
pub const DEFAULT_HOST: &str = "127.0.0.1";
/// Default MySQL port.
pub const DEFAULT_PORT: u16 = 3306;
/// Default replica server id Tributary registers with (must be unique among the server's replicas).
pub const DEFAULT_SERVER_ID: u32 = 5400;
/// Default number of rows one snapshot query reads.
pub const DEFAULT_SNAPSHOT_CHUNK_ROWS: u64 = 10_000;
/// Default seconds to wait for a connection.
pub const DEFAULT_CONNECT_TIMEOUT_SECS: u64 = 10;
/// Default seconds between heartbeats the server sends on an idle binlog stream.
pub const DEFAULT_HEARTBEAT_SECS: u64 = 10;

/// Connection and selection settings of a MySQL / MariaDB source.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MySqlSourceConfig {
    #[serde(default = "default_host")]
    pub host: String,
    #[serde(default = "default_port")]
    pub port: u16,
    pub user: String,
    /// Prefer the environment variable [`PASSWORD_ENV`]; see [`MySqlSourceConfig::with_env_overrides`].
    #[serde(default)]
    pub password: Secret,
    /// A file holding the password (`/run/secrets/...`), read at load; one trailing newline is ignored.
    #[serde(default)]
    pub password_file: Option<std::path::PathBuf>,
    /// Replica server id used for the binlog dump; nonzero and unique among the server's replicas.
    #[serde(default = "default_server_id")]
    pub server_id: u32,
    /// `db.table` patterns (`*` and `?` wildcards) of the tables to capture.
    pub include: Vec<String>,
    /// `db.table` patterns removed from what `include` matched.
    #[serde(default)]
    pub exclude: Vec<String>,
    #[serde(default)]
    pub snapshot: SnapshotMode,
    #[serde(default = "default_snapshot_chunk_rows")]
    pub snapshot_chunk_rows: u64,
    /// How tables with a primary key are copied (docs/snapshots.md).
    #[serde(default)]
    pub snapshot_method: SnapshotMethod,
    /// Connections a chunked snapshot reads with at once.
    #[serde(default = "default_snapshot_parallelism")]
    pub snapshot_parallelism: usize,
    #[serde(default = "default_connect_timeout_secs")]
    pub connect_timeout_secs: u64,
    /// The server sends a heartbeat after this many idle seconds; a stream silent
    /// for three periods is treated as dead.
    #[serde(default = "default_heartbeat_secs")]
    pub heartbeat_secs: u64,
    /// TLS on every connection (SQL sessions, snapshot, binlog stream); libpq's names and meanings.
    #[serde(default)]
    pub ssl_mode: SslMode,
    /// PEM file of the CA that signed the server certificate.
    #[serde(default)]
    pub ssl_ca: Option<PathBuf>,
    /// PEM file of the client certificate (with `ssl_key`).
    #[serde(default)]
    pub ssl_cert: Option<PathBuf>,
    /// PEM file of the client certificate's private key.
    #[serde(default)]
    pub ssl_key: Option<PathBuf>,
}

fn default_host() -> String {
    DEFAULT_HOST.to_string()
}
fn default_port() -> u16 {
    DEFAULT_PORT
}
fn default_server_id() -> u32 {
    DEFAULT_SERVER_ID
}
fn default_snapshot_parallelism() -> usize {
    DEFAULT_SNAPSHOT_PARALLELISM
}

fn default_snapshot_chunk_rows() -> u64 {
    DEFAULT_SNAPSHOT_CHUNK_ROWS
}
fn default_connect_timeout_secs() -> u64 {
    DEFAULT_CONNECT_TIMEOUT_SECS
}
fn default_heartbeat_secs() -> u64 {
    DEFAULT_HEARTBEAT_SECS
}

fn config_error(field: &str, problem: impl Into<String>) -> MySqlError {
    MySqlError::Config { field: format!("source.{field}"), problem: problem.into() }
}

impl MySqlSourceConfig {
    /// A config with every default, for `user` and the `include` patterns.
    pub fn new(user: impl Into<String>, include: Vec<String>) -> Self {
        MySqlSourceConfig {
            host: default_host(),
            port: DEFAULT_PORT,
            user: user.into(),
            password: Secret::default(),
            password_file: None,
            server_id: DEFAULT_SERVER_ID,
            include,
            exclude: Vec::new(),
            snapshot: SnapshotMode::default(),
            snapshot_chunk_rows: DEFAULT_SNAPSHOT_CHUNK_ROWS,
            snapshot_method: SnapshotMethod::default(),
            snapshot_parallelism: DEFAULT_SNAPSHOT_PARALLELISM,
            connect_timeout_secs: DEFAULT_CONNECT_TIMEOUT_SECS,
            heartbeat_secs: DEFAULT_HEARTBEAT_SECS,
            ssl_mode: SslMode::default(),
            ssl_ca: None,
            ssl_cert: None,
            ssl_key: None,
        }
    }

    /// The TLS settings.
    pub fn tls(&self) -> TlsConfig {
        TlsConfig {
            ssl_mode: self.ssl_mode,
            ssl_ca: self.ssl_ca.clone(),
            ssl_cert: self.ssl_cert.clone(),
            ssl_key: self.ssl_key.clone(),
        }
    }

    /// Takes the password from [`PASSWORD_ENV`] when that is set.
    pub fn with_env_overrides(self) -> Self {
        self.with_password_override(std::env::var(PASSWORD_ENV).ok())
    }

    /// Replaces the password when `password` is `Some`.
    pub fn with_password_override(mut self, password: Option<String>) -> Self {
        if let Some(p) = password {
            self.password = Secret::new(p);
        }
        self
    }

    /// `host:port`, for messages.
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), MySqlError> {
        if self.host.trim().is_empty() {
            return Err(config_error("host", "must not be empty"));
        }
        if self.port == 0 {
            return Err(config_error("port", "must be between 1 and 65535"));
        }
        if self.user.trim().is_empty() {
            return Err(config_error("user", "must not be empty"));
        }
        if self.server_id == 0 {
            return Err(config_error("server_id", "must be nonzero (0 is refused by the server for replicas)"));
        }
        if self.include.is_empty() {
            return Err(config_error("include", "must list at least one `db.table` pattern, e.g. \"shop.*\""));
        }
        if self.snapshot_chunk_rows == 0 {
            return Err(config_error("snapshot_chunk_rows", "must be at least 1"));
        }
        if !(1..=64).contains(&self.snapshot_parallelism) {
            return Err(config_error("snapshot_parallelism", "must be between 1 and 64"));
        }
        if self.connect_timeout_secs == 0 {
            return Err(config_error("connect_timeout_secs", "must be at least 1"));
        }
        if self.heartbeat_secs == 0 || self.heartbeat_secs > 4_294_967 {
            return Err(config_error("heartbeat_secs", "must be between 1 and 4294967"));
        }
        self.tls().validate().map_err(|e| config_error(e.field, e.problem))?;
        self.table_filter().map(|_| ())
    }

    /// The include / exclude matcher; fails on a malformed pattern.
    pub fn table_filter(&self) -> Result<TableFilter, MySqlError> {
        TableFilter::new(&self.include, &self.exclude, &crate::SYSTEM_SCHEMAS)
            .map_err(|e| MySqlError::Config { field: e.field, problem: e.problem })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<MySqlSourceConfig, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn parses_an_example_and_fills_defaults() {
        let cfg = parse(r#"{"user": "cdc", "password": "pw", "include": ["shop.*"], "snapshot": "never"}"#).unwrap();
        assert_eq!(cfg.host, DEFAULT_HOST);
        assert_eq!(cfg.port, DEFAULT_PORT);
        assert_eq!(cfg.server_id, DEFAULT_SERVER_ID);
        assert_eq!(cfg.snapshot, SnapshotMode::Never);
        assert_eq!(cfg.snapshot_chunk_rows, DEFAULT_SNAPSHOT_CHUNK_ROWS);
        assert_eq!(cfg.connect_timeout_secs, DEFAULT_CONNECT_TIMEOUT_SECS);
        assert_eq!(cfg.password.expose(), "pw");
        assert!(cfg.exclude.is_empty());
        cfg.validate().unwrap();
    }

    #[test]
    fn snapshot_defaults_to_initial() {
        let cfg = parse(r#"{"user": "cdc", "include": ["a.b"]}"#).unwrap();
        assert_eq!(cfg.snapshot, SnapshotMode::Initial);
    }

    #[test]
    fn rejects_unknown_fields_naming_the_key() {
        let err = parse(r#"{"user": "cdc", "include": ["a.b"], "hots": "x"}"#).unwrap_err();
        assert!(err.to_string().contains("hots"), "{err}");
    }

    #[test]
    fn validate_rejects_empty_include() {
        let cfg = MySqlSourceConfig::new("cdc", vec![]);
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains("source.include"), "{err}");
    }

    #[test]
    fn validate_rejects_zero_server_id() {
        let mut cfg = MySqlSourceConfig::new("cdc", vec!["a.*".into()]);
        cfg.server_id = 0;
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains("source.server_id"), "{err}");
    }

    #[test]
    fn validate_rejects_a_pattern_without_a_dot() {
        let cfg = MySqlSourceConfig::new("cdc", vec!["shop".into()]);
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains("source.include"), "{err}");
    }

    #[test]
    fn tls_settings_parse_default_to_prefer_and_are_validated() {
        let cfg = parse(r#"{"user": "cdc", "include": ["a.b"]}"#).unwrap();
        assert_eq!(cfg.ssl_mode, SslMode::Prefer);
        assert_eq!(cfg.tls(), TlsConfig::default());
        let cfg =
            parse(r#"{"user": "cdc", "include": ["a.b"], "ssl_mode": "verify-full", "ssl_ca": "/nonexistent/ca.pem"}"#)
                .unwrap();
        assert_eq!(cfg.ssl_mode, SslMode::VerifyFull);
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains("source.ssl_ca") && err.contains("/nonexistent/ca.pem"), "{err}");
        let err = parse(r#"{"user": "cdc", "include": ["a.b"], "ssl_mode": "required"}"#).unwrap_err().to_string();
        assert!(err.contains("verify-full"), "lists the accepted modes: {err}");
        let err = parse(r#"{"user": "cdc", "include": ["a.b"], "sslmode": "require"}"#).unwrap_err().to_string();
        assert!(err.contains("sslmode"), "{err}");
    }

    #[test]
    fn password_override_replaces_and_debug_hides_it() {
        let cfg = MySqlSourceConfig::new("cdc", vec!["a.*".into()]).with_password_override(Some("s3cret".into()));
        assert_eq!(cfg.password.expose(), "s3cret");
        assert!(!format!("{cfg:?}").contains("s3cret"));
        let kept = cfg.clone().with_password_override(None);
        assert_eq!(kept.password.expose(), "s3cret");
    }
}
