//! Errors of the PostgreSQL source. Every message names the cause and what to
//! change; [`Retryable::class`] says whether retrying can help.

use tributary_core::{ErrorClass, Retryable};

/// An error of the PostgreSQL source.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PostgresError {
    #[error("cannot connect to PostgreSQL at {address}: {reason}; check source.host / source.port and that the server is running")]
    Connect { address: String, reason: String },
    #[error("PostgreSQL refused user '{user}' (wrong password or unknown user); check source.user and the password (TRIBUTARY_SOURCE_PASSWORD, or source.password in the config file)")]
    AccessDenied { user: String },
    #[error("PostgreSQL refused the login of user '{user}': {reason}; allow it in the server's pg_hba.conf, or give the role LOGIN (ALTER ROLE {user} WITH LOGIN)")]
    LoginRefused { user: String, reason: String },
    #[error("PostgreSQL database '{database}' does not exist; check source.database")]
    NoDatabase { database: String },
    #[error("server setting {name} is '{found}' but CDC needs '{expected}'; {fix}")]
    Setting { name: String, found: String, expected: String, fix: String },
    #[error("role '{user}' lacks the REPLICATION attribute; run: ALTER ROLE {user} WITH REPLICATION")]
    NoReplicationRole { user: String },
    #[error("{table}: {problem}")]
    ReplicaIdentity { table: String, problem: String },
    #[error("no source table matches source.include {include:?} (minus source.exclude) in database '{database}'; check the filters")]
    NoTables { include: Vec<String>, database: String },
    #[error("cannot map column {table}.{column} of type {source_type}: {reason}")]
    UnsupportedType { table: String, column: String, source_type: String, reason: String },
    #[error("config field {field}: {problem}")]
    Config { field: String, problem: String },
    #[error("publication '{publication}': {problem}")]
    Publication { publication: String, problem: String },
    #[error("replication slot '{slot}': {problem}")]
    Slot { slot: String, problem: String },
    #[error("{context}: {reason}")]
    Query { context: String, reason: String },
    #[error("snapshot of {table}: {problem}")]
    Snapshot { table: String, problem: String },
    #[error("replication stream: {0}")]
    Replication(String),
    #[error("decoding {table} at {lsn}: {problem}")]
    Decode { table: String, lsn: String, problem: String },
}

impl PostgresError {
    /// Wraps a tokio-postgres error with what was being done, on one line.
    pub fn query(context: impl Into<String>, source: tokio_postgres::Error) -> Self {
        PostgresError::Query { context: context.into(), reason: one_line(&source) }
    }
}

/// The server's message (and SQLSTATE) of a client error, on one line.
pub fn one_line(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                text.push_str(": ");
                text.push_str(&s.to_string());
                source = s.source();
            }
            text.replace('\n', " ")
        }
    }
}

impl Retryable for PostgresError {
    fn class(&self) -> ErrorClass {
        match self {
            PostgresError::Connect { .. } | PostgresError::Replication(_) => ErrorClass::Transient,
            PostgresError::Decode { .. } => ErrorClass::Fatal,
            _ => ErrorClass::NeedsOperator,
        }
    }
}
