//! The change-event model shared by every Tributary source and sink.
//!
//! Sources (MySQL / MariaDB binlog, PostgreSQL pgoutput, snapshot readers) turn
//! what they read into [`ChangeEvent`]s carrying typed [`Value`]s and a totally
//! ordered [`SourcePosition`]; sinks (Delta Lake) consume whole
//! [`Transaction`]s and store the position atomically with the data.

pub mod error;
pub mod event;
pub mod filter;
pub mod position;
pub mod schema;
pub mod secret;
pub mod source;
pub mod tls;
pub mod value;

pub use error::{ErrorClass, Retryable};
pub use event::{ChangeEvent, RowChange, SchemaChangeAt, Transaction};
pub use filter::{FilterError, TableFilter};
pub use position::{Gtid, Lsn, MySqlPosition, SourcePosition};
pub use schema::{Column, ColumnType, TableId, TableSchema};
pub use secret::{read_secret_file, Secret, SecretFile};
pub use source::{SnapshotMethod, SnapshotMode, DEFAULT_SNAPSHOT_PARALLELISM, PASSWORD_ENV, PASSWORD_FILE_ENV};
pub use tls::{SslMode, TlsConfig, TlsFailure};
pub use value::{Row, Value};
