//! PostgreSQL source: preflight checks, publication and slot management, a
//! consistent snapshot through the slot's exported snapshot, pgoutput logical
//! replication decoded into [`tributary_core::ChangeEvent`]s, and the type
//! mapping of PostgreSQL column types (docs/types.md).

pub mod config;
pub mod connect;
pub mod decoder;
pub mod error;
pub mod identity;
pub mod preflight;
pub mod publication;
pub mod schema_loader;
pub mod snapshot;
pub mod stream;
pub mod text_value;
pub mod tls;
pub mod type_map;

pub use config::PostgresSourceConfig;
pub use error::PostgresError;
/// The SQL session type of [`connect::connect`].
pub use tokio_postgres::Client as SqlClient;
