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
    #[error("TLS to PostgreSQL at {address}: {failure}")]
    Tls { address: String, failure: tributary_core::TlsFailure },
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

/// Any client error on one line: the server's message and SQLSTATE when the
/// server answered (tokio-postgres), otherwise the error and its causes (a
/// cause its parent already quotes is left out). The crate's one helper for
/// the errors of tokio-postgres and pg_walstream alike.
pub fn one_line(e: &(dyn std::error::Error + 'static)) -> String {
    if let Some(db) = e.downcast_ref::<tokio_postgres::Error>().and_then(tokio_postgres::Error::as_db_error) {
        return format!("{} (SQLSTATE {})", db.message(), db.code().code());
    }
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.last().is_some_and(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ").replace('\n', " ")
}

impl Retryable for PostgresError {
    fn class(&self) -> ErrorClass {
        match self {
            PostgresError::Connect { .. } | PostgresError::Replication(_) => ErrorClass::Transient,
            PostgresError::Decode { .. } => ErrorClass::Fatal,
            // A certificate, CA or mode that does not fit the server: someone must change it.
            PostgresError::Tls { .. } => ErrorClass::NeedsOperator,
            _ => ErrorClass::NeedsOperator,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{one_line, PostgresError};
    use tributary_core::{ErrorClass, Retryable, SslMode, TlsFailure};

    #[test]
    fn a_tls_failure_needs_an_operator() {
        let e = PostgresError::Tls {
            address: "db:5432".into(),
            failure: TlsFailure::ServerWithoutTls { mode: SslMode::VerifyFull },
        };
        assert_eq!(e.class(), ErrorClass::NeedsOperator);
        assert!(e.to_string().contains("ssl_mode = \"verify-full\""), "{e}");
    }

    #[test]
    fn a_replication_error_and_its_cause_fit_on_one_line_without_repeats() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset\nby peer");
        let e = pg_walstream::ReplicationError::Io(io);
        assert_eq!(one_line(&e), "IO error: reset by peer");
        let e = pg_walstream::ReplicationError::ReplicationSlot("slot \"s\" is active".into());
        assert_eq!(one_line(&e), "Replication slot error: slot \"s\" is active");
    }
}
