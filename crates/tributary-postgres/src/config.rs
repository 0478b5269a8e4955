//! The `[source.postgres]` section: connection, slot and publication names,
//! table filters and snapshot mode, with named defaults and a `validate()`
//! that names the failing field.

use serde::Deserialize;
use std::path::PathBuf;
use tributary_core::{Secret, TableFilter, TlsConfig};
pub use tributary_core::{SnapshotMethod, SnapshotMode, SslMode, DEFAULT_SNAPSHOT_PARALLELISM, PASSWORD_ENV};

use crate::error::PostgresError;

/// Default server host: the local machine over TCP.
pub const DEFAULT_HOST: &str = "127.0.0.1";
/// Default PostgreSQL port.
pub const DEFAULT_PORT: u16 = 5432;
/// Default logical replication slot name.
pub const DEFAULT_SLOT: &str = "tributary";
/// Default publication name.
pub const DEFAULT_PUBLICATION: &str = "tributary";
/// Default number of rows one snapshot query reads.
pub const DEFAULT_SNAPSHOT_CHUNK_ROWS: u64 = 10_000;
/// Default seconds to wait for a connection.
pub const DEFAULT_CONNECT_TIMEOUT_SECS: u64 = 10;
/// Default seconds between heartbeat messages written while the stream is idle.
pub const DEFAULT_HEARTBEAT_SECS: u64 = 10;
/// Schemas of the server itself, never captured whatever the patterns say.
pub const SYSTEM_SCHEMAS: [&str; 3] = ["pg_catalog", "information_schema", "pg_toast"];

/// Connection and selection settings of a PostgreSQL source.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresSourceConfig {
    #[serde(default = "default_host")]
    pub host: String,
    #[serde(default = "default_port")]
    pub port: u16,
    pub user: String,
    /// Prefer the environment variable [`PASSWORD_ENV`].
    #[serde(default)]
    pub password: Secret,
    /// A file holding the password (`/run/secrets/...`), read at load; one trailing newline is ignored.
    #[serde(default)]
    pub password_file: Option<std::path::PathBuf>,
    pub database: String,
    /// Logical replication slot (created with pgoutput when missing).
    #[serde(default = "default_slot")]
    pub slot: String,
    /// Publication (created for the included tables when missing).
    #[serde(default = "default_publication")]
    pub publication: String,
    /// `schema.table` patterns (`*` and `?` wildcards) of the tables to capture.
    pub include: Vec<String>,
    /// `schema.table` patterns removed from what `include` matched.
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
    /// While nothing is in flight, a heartbeat message is written to the WAL
    /// this often so that the slot's confirmed position (and the lag gauge)
    /// keeps up with an idle or unrelated-busy database.
    #[serde(default = "default_heartbeat_secs")]
    pub heartbeat_secs: u64,
    /// What the publication Tributary creates covers.
    #[serde(default)]
    pub publish: PublicationScope,
    /// TLS on every connection (SQL sessions, snapshot, replication stream); libpq's names and meanings.
    #[serde(default)]
    pub ssl_mode: SslMode,
    /// PEM file of the CA that signed the server certificate.
    #[serde(default)]
    pub ssl_ca: Option<PathBuf>,
    /// PEM file of the client certificate (with `ssl_key`); presented by the
    /// SQL sessions only (pg_walstream 0.9 cannot present one on the
    /// replication session).
    #[serde(default)]
    pub ssl_cert: Option<PathBuf>,
    /// PEM file of the client certificate's private key.
    #[serde(default)]
    pub ssl_key: Option<PathBuf>,
}

/// `source.postgres.publish`: what the publication Tributary creates covers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PublicationScope {
    /// The selected tables (`FOR TABLE ...`): a table created later joins
    /// at the next start, copied through a snapshot.
    #[default]
    Tables,
    /// The schemas of the include patterns (`FOR TABLES IN SCHEMA ...`,
    /// PostgreSQL 15+, created by a superuser): tables created later stream
    /// from their creation. Every table created there is published, so one
    /// without a primary key needs a replica identity before the application
    /// updates or deletes its rows.
    Schemas,
}

fn default_host() -> String {
    DEFAULT_HOST.to_string()
}
fn default_port() -> u16 {
    DEFAULT_PORT
}
fn default_slot() -> String {
    DEFAULT_SLOT.to_string()
}
fn default_publication() -> String {
    DEFAULT_PUBLICATION.to_string()
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

fn config_error(field: &str, problem: impl Into<String>) -> PostgresError {
    PostgresError::Config { field: format!("source.{field}"), problem: problem.into() }
}

impl PostgresSourceConfig {
    /// A config with every default, for `user`, `database` and the `include` patterns.
    pub fn new(user: impl Into<String>, database: impl Into<String>, include: Vec<String>) -> Self {
        PostgresSourceConfig {
            host: default_host(),
            port: DEFAULT_PORT,
            user: user.into(),
            password: Secret::default(),
            password_file: None,
            database: database.into(),
            slot: default_slot(),
            publication: default_publication(),
            include,
            exclude: Vec::new(),
            snapshot: SnapshotMode::default(),
            snapshot_chunk_rows: DEFAULT_SNAPSHOT_CHUNK_ROWS,
            snapshot_method: SnapshotMethod::default(),
            snapshot_parallelism: DEFAULT_SNAPSHOT_PARALLELISM,
            connect_timeout_secs: DEFAULT_CONNECT_TIMEOUT_SECS,
            heartbeat_secs: DEFAULT_HEARTBEAT_SECS,
            publish: PublicationScope::Tables,
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
    pub fn with_env_overrides(mut self) -> Self {
        if let Ok(p) = std::env::var(PASSWORD_ENV) {
            self.password = Secret::new(p);
        }
        self
    }

    /// The schemas a `publish = "schemas"` publication covers: those the
    /// include patterns name, sorted.
    pub fn published_schemas(&self) -> Vec<String> {
        let mut schemas: Vec<String> =
            self.include.iter().filter_map(|p| p.split('.').next()).map(str::to_string).collect();
        schemas.sort();
        schemas.dedup();
        schemas
    }

    /// `host:port`, for messages.
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), PostgresError> {
        if self.host.is_empty() {
            return Err(config_error("host", "must not be empty"));
        }
        if self.port == 0 {
            return Err(config_error("port", "must be between 1 and 65535"));
        }
        if self.user.is_empty() {
            return Err(config_error("user", "must not be empty"));
        }
        if self.database.is_empty() {
            return Err(config_error("database", "must not be empty"));
        }
        // Slot names: lower-case letters, digits and underscores (the server's own rule).
        let slot_ok = |s: &str| {
            !s.is_empty()
                && s.len() <= 63
                && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        };
        if !slot_ok(&self.slot) {
            return Err(config_error(
                "slot",
                format!("{:?} is not a valid slot name: use 1-63 lower-case letters, digits and '_'", self.slot),
            ));
        }
        if !slot_ok(&self.publication) {
            return Err(config_error(
                "publication",
                format!("{:?}: use 1-63 lower-case letters, digits and '_'", self.publication),
            ));
        }
        if self.include.is_empty() {
            return Err(config_error("include", "list at least one `schema.table` pattern, e.g. \"public.*\""));
        }
        if self.publish == PublicationScope::Schemas {
            if let Some(pattern) =
                self.include.iter().find(|p| p.split('.').next().is_none_or(|s| s.contains(['*', '?'])))
            {
                return Err(config_error(
                    "publish",
                    format!("\"schemas\" publishes whole schemas, so each include pattern must name its schema without wildcards; {pattern:?} does not"),
                ));
            }
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
        if self.heartbeat_secs == 0 {
            return Err(config_error("heartbeat_secs", "must be at least 1"));
        }
        self.tls().validate().map_err(|e| config_error(e.field, e.problem))?;
        self.table_filter().map(|_| ())
    }

    /// The include / exclude matcher; fails on a malformed pattern.
    pub fn table_filter(&self) -> Result<TableFilter, PostgresError> {
        TableFilter::new(&self.include, &self.exclude, &SYSTEM_SCHEMAS)
            .map_err(|e| PostgresError::Config { field: e.field, problem: e.problem })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deserializes `key=value;...` pairs (string values only).
    fn from_pairs(text: &str) -> Result<PostgresSourceConfig, String> {
        let pairs = text.split(';').map(|kv| kv.split_once('=').expect("key=value"));
        let map = serde::de::value::MapDeserializer::<_, serde::de::value::Error>::new(pairs);
        PostgresSourceConfig::deserialize(map).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_fill_the_optional_fields() {
        let mut c = PostgresSourceConfig::new("cdc", "shop", vec!["public.*".into()]);
        c.validate().unwrap();
        assert_eq!((c.port, c.slot.as_str(), c.publication.as_str()), (5432, "tributary", "tributary"));
        c.slot = "Bad-Slot".into();
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("source.slot"), "{err}");
    }

    #[test]
    fn an_empty_include_and_a_malformed_pattern_name_their_field() {
        let c = PostgresSourceConfig::new("cdc", "shop", vec![]);
        assert!(c.validate().unwrap_err().to_string().contains("source.include"));
        let c = PostgresSourceConfig::new("cdc", "shop", vec!["nodot".into()]);
        assert!(c.validate().unwrap_err().to_string().contains("source.include"));
    }

    #[test]
    fn system_schemas_are_never_captured() {
        let c = PostgresSourceConfig::new("cdc", "shop", vec!["*.*".into()]);
        let f = c.table_filter().unwrap();
        assert!(!f.matches(&tributary_core::TableId::new("pg_catalog", "pg_class")));
        assert!(f.matches(&tributary_core::TableId::new("public", "orders")));
    }

    #[test]
    fn a_schema_publication_needs_schemas_without_wildcards() {
        let mut c = PostgresSourceConfig::new("cdc", "shop", vec!["sales.*".into(), "public.orders".into()]);
        c.publish = PublicationScope::Schemas;
        c.validate().unwrap();
        assert_eq!(c.published_schemas(), ["public", "sales"]);
        c.include.push("tenant_*.orders".into());
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("source.publish") && err.contains("tenant_*.orders"), "{err}");
        let err = from_pairs("user=a;database=b;publish=all").unwrap_err();
        assert!(err.contains("tables") && err.contains("schemas"), "{err}");
    }

    #[test]
    fn tls_settings_default_to_prefer_parse_the_libpq_names_and_are_validated() {
        let c = PostgresSourceConfig::new("cdc", "shop", vec!["public.*".into()]);
        assert_eq!(c.ssl_mode, SslMode::Prefer);
        assert_eq!(c.tls(), TlsConfig::default());
        let err = from_pairs("user=a;database=b;ssl_mode=verify_full").unwrap_err();
        assert!(err.contains("verify-full"), "lists the accepted modes: {err}");
        let err = from_pairs("user=a;database=b;sslmode=require").unwrap_err();
        assert!(err.contains("sslmode"), "{err}");
        let mut c = PostgresSourceConfig::new("cdc", "shop", vec!["public.*".into()]);
        c.ssl_mode = SslMode::VerifyCa;
        c.ssl_key = Some("/k.pem".into());
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("source.ssl_cert"), "{err}");
        c.ssl_key = None;
        c.ssl_ca = Some("/nonexistent/ca.pem".into());
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("source.ssl_ca") && err.contains("cannot read /nonexistent/ca.pem"), "{err}");
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = from_pairs("user=a;database=b;slot_name=x").unwrap_err();
        assert!(err.contains("slot_name"), "{err}");
    }
}
