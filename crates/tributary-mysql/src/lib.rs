//! MySQL / MariaDB source: preflight checks, consistent snapshot, binlog
//! decoding into [`tributary_core::ChangeEvent`]s and the type mapping of
//! every MySQL column type (docs/types.md).
//!
//! Decoding is shared by the live binlog stream ([`stream`]) and the offline
//! reader of binlog files ([`binlog_file`]): both feed
//! `mysql_common` binlog events to a [`decoder::BinlogDecoder`].

pub mod binlog_file;
pub mod config;
pub mod connect;
pub mod decoder;
pub mod error;
pub mod gtid;
pub mod identity;
pub mod preflight;
pub mod schema_loader;
pub mod snapshot;
pub mod stream;
pub mod type_map;

pub use config::MySqlSourceConfig;

/// Schemas of the server itself, never captured whatever the patterns say.
pub const SYSTEM_SCHEMAS: [&str; 4] = ["mysql", "information_schema", "performance_schema", "sys"];
pub use error::MySqlError;
