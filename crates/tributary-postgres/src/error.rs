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
    #[error("{context}: the connection was lost ({reason})")]
    Lost { context: String, reason: String },
    #[error("decoding {table} at {lsn}: {problem}")]
    Decode { table: String, lsn: String, problem: String },
}

impl PostgresError {
    /// Wraps a tokio-postgres error with what was being done, on one line: a
    /// lost connection (closed, I/O, or the server shutting down or starting
    /// up) becomes [`PostgresError::Lost`], which a new connection gets past.
    pub fn query(context: impl Into<String>, source: tokio_postgres::Error) -> Self {
        let reason = one_line(&source);
        let lost = match source.as_db_error() {
            Some(db) => is_transient_sqlstate(db.code().code()),
            None => source.is_closed() || caused_by_io(&source) || source.to_string().contains("timeout"),
        };
        if lost {
            PostgresError::Lost { context: context.into(), reason }
        } else {
            PostgresError::Query { context: context.into(), reason }
        }
    }

    /// A pg_walstream error while `context`: what pg_walstream itself calls
    /// transient (I/O, timeouts, SQLSTATEs such as 57P01 shutdown or 55006 a
    /// slot still held by a session the server has not yet seen end) becomes
    /// [`PostgresError::Lost`]; everything else goes through `otherwise`.
    pub fn replication(
        context: &str,
        source: &pg_walstream::ReplicationError,
        otherwise: impl FnOnce(String) -> PostgresError,
    ) -> Self {
        let reason = one_line(source);
        if source.is_transient() || walstream_sqlstate(source).is_some_and(is_transient_sqlstate) {
            PostgresError::Lost { context: context.to_string(), reason }
        } else {
            otherwise(reason)
        }
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
    tributary_core::error::one_line(e)
}

/// True when an I/O error is among the causes of `e`.
fn caused_by_io(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = e.source();
    while let Some(c) = cause {
        if c.is::<std::io::Error>() {
            return true;
        }
        cause = c.source();
    }
    false
}

/// SQLSTATEs a new connection gets past: connection exceptions (class 08),
/// operator intervention (57P01 admin shutdown, 57P02 crash shutdown, 57P03
/// cannot connect now, 57P05 idle session timeout), 25P03 idle-in-transaction
/// timeout, too many connections.
fn is_transient_sqlstate(code: &str) -> bool {
    code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "57P05" | "25P03" | "53300")
}

/// The SQLSTATE of a server error pg_walstream has no class for: it reports
/// those as `Protocol("[25P03] ...")` (e.g. the idle timeouts, which it does
/// not count as transient).
fn walstream_sqlstate(e: &pg_walstream::ReplicationError) -> Option<&str> {
    let pg_walstream::ReplicationError::Protocol(message) = e else { return None };
    let code = message.strip_prefix('[')?.get(..5)?;
    (message.as_bytes().get(6) == Some(&b']')).then_some(code)
}

impl Retryable for PostgresError {
    fn class(&self) -> ErrorClass {
        match self {
            PostgresError::Connect { .. } | PostgresError::Replication(_) | PostgresError::Lost { .. } => {
                ErrorClass::Transient
            }
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
    fn a_replication_session_ended_by_an_idle_timeout_is_lost_not_a_slot_problem() {
        let slot = |reason: String| PostgresError::Slot { slot: "s".into(), problem: reason };
        for code in ["25P03", "57P05"] {
            let ended = pg_walstream::ReplicationError::Protocol(format!(
                "[{code}] Query execution failed: FATAL: terminating connection due to idle timeout"
            ));
            let e = PostgresError::replication("starting logical replication", &ended, slot);
            assert!(matches!(e, PostgresError::Lost { .. }), "{code}: {e}");
            assert_eq!(e.class(), ErrorClass::Transient);
        }
        let syntax = pg_walstream::ReplicationError::Protocol("[42601] syntax error".into());
        let e = PostgresError::replication("starting logical replication", &syntax, slot);
        assert!(matches!(e, PostgresError::Slot { .. }), "{e}");
        let plain = pg_walstream::ReplicationError::Protocol("unexpected message".into());
        assert!(matches!(PostgresError::replication("reading", &plain, slot), PostgresError::Slot { .. }));
    }

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

    #[test]
    fn a_slot_held_by_a_dying_session_is_transient_and_a_missing_slot_is_not() {
        use super::{ErrorClass, PostgresError, Retryable};
        let slot = |problem| PostgresError::Slot { slot: "s".into(), problem };
        let active = pg_walstream::ReplicationError::TransientConnection(
            "[55006] replication slot \"s\" is active for PID 42".into(),
        );
        assert_eq!(PostgresError::replication("start", &active, slot).class(), ErrorClass::Transient);
        let missing =
            pg_walstream::ReplicationError::ReplicationSlot("[42704] replication slot \"s\" does not exist".into());
        assert_eq!(PostgresError::replication("start", &missing, slot).class(), ErrorClass::NeedsOperator);
        let refused = pg_walstream::ReplicationError::ReplicationConnection("Connection refused".into());
        assert_eq!(PostgresError::replication("open", &refused, slot).class(), ErrorClass::Transient);
    }
}
