//! Errors of the MySQL / MariaDB source. Every message names the cause and
//! what to change; [`Retryable::class`] says whether retrying can help.

use tributary_core::{ErrorClass, Retryable};

pub use crate::decoder::DecodeError;

/// An error of the MySQL / MariaDB source.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MySqlError {
    #[error("cannot connect to MySQL at {address}: {reason}; check source.host / source.port and that the server is running")]
    Connect { address: String, reason: String },
    #[error("TLS to MySQL at {address}: {failure}")]
    Tls { address: String, failure: tributary_core::TlsFailure },
    #[error("MySQL refused user '{user}' (wrong password or unknown user); check source.user and the password in TRIBUTARY_SOURCE_PASSWORD")]
    AccessDenied { user: String },
    #[error("server setting {name} is '{found}' but CDC needs '{expected}'; {fix}")]
    Setting { name: String, found: String, expected: String, fix: String },
    #[error("user '{user}' lacks the {privilege} privilege; run: GRANT {privilege} ON {on} TO '{user}'@'%'")]
    MissingPrivilege { user: String, privilege: String, on: String },
    #[error("table {table} does not exist on the source (matched by source.include); create it or change the filter")]
    TableNotFound { table: String },
    #[error("no source table matches source.include {include:?} (minus source.exclude); check the filters")]
    NoTables { include: Vec<String> },
    #[error("cannot map column {table}.{column} of type {source_type}: {reason}")]
    UnsupportedType { table: String, column: String, source_type: String, reason: String },
    #[error("config field {field}: {problem}")]
    Config { field: String, problem: String },
    #[error("{context}: {source}")]
    Query {
        context: String,
        #[source]
        source: mysql_async::Error,
    },
    #[error("unexpected answer from the server while {context}: {detail}; check that the server version is supported, else report a bug")]
    Protocol { context: String, detail: String },
    #[error("snapshot of {table}: {problem}")]
    Snapshot { table: String, problem: String },
    #[error("the server cannot send the binlog from {position}: {reason}; if that file was purged, raise binlog_expire_logs_seconds (expire_logs_days on MariaDB) and take a new snapshot; if another replica uses the same id, change source.server_id")]
    BinlogUnavailable { position: String, reason: String },
    #[error("cannot continue after GTID {gtid} on this server: {reason}; point the source at a server whose binlog holds the lake's GTIDs (the old primary, or a replica that has caught up), or remove the table's Delta directory so it is copied again")]
    GtidNotOnServer { gtid: String, reason: String },
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

impl MySqlError {
    /// Wraps a client error with what was being done.
    pub fn query(context: impl Into<String>, source: mysql_async::Error) -> Self {
        MySqlError::Query { context: context.into(), source }
    }
}

/// Server errors a new connection gets past: too many connections (1040),
/// shutdown in progress (1053), aborted connection (1152), network read /
/// write timeouts and errors (1158-1161), query interrupted (1317), connection
/// or session killed (1927 MariaDB, 3169 MySQL), lock wait timeout (1205) and
/// deadlock (1213) on the catalog connection.
const TRANSIENT_SERVER_ERRORS: [u16; 12] = [1040, 1053, 1152, 1158, 1159, 1160, 1161, 1205, 1213, 1317, 1927, 3169];

impl Retryable for MySqlError {
    fn class(&self) -> ErrorClass {
        match self {
            MySqlError::Connect { .. } => ErrorClass::Transient,
            // A certificate, CA or mode that does not fit the server: someone must change it.
            MySqlError::Tls { .. } => ErrorClass::NeedsOperator,
            MySqlError::Query { source: mysql_async::Error::Io(_) | mysql_async::Error::Driver(_), .. } => {
                ErrorClass::Transient
            }
            MySqlError::Query { source: mysql_async::Error::Server(s), .. }
                if TRANSIENT_SERVER_ERRORS.contains(&s.code) =>
            {
                ErrorClass::Transient
            }
            MySqlError::Query { .. } => ErrorClass::NeedsOperator,
            MySqlError::Decode(_) => ErrorClass::Fatal,
            _ => ErrorClass::NeedsOperator,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server_error(code: u16) -> MySqlError {
        let e = mysql_async::ServerError { code, message: "m".into(), state: "HY000".into() };
        MySqlError::query("reading the binlog", mysql_async::Error::Server(e))
    }

    #[test]
    fn a_killed_or_shut_down_connection_is_transient_and_a_syntax_error_is_not() {
        assert_eq!(server_error(1927).class(), ErrorClass::Transient, "connection killed (MariaDB)");
        assert_eq!(server_error(1053).class(), ErrorClass::Transient, "server shutdown in progress");
        assert_eq!(server_error(1064).class(), ErrorClass::NeedsOperator, "syntax error");
        assert_eq!(MySqlError::AccessDenied { user: "u".into() }.class(), ErrorClass::NeedsOperator);
        let purged = MySqlError::BinlogUnavailable { position: "f:4".into(), reason: "purged".into() };
        assert_eq!(purged.class(), ErrorClass::NeedsOperator);
    }

    #[test]
    fn a_tls_failure_needs_an_operator_and_names_the_fix() {
        let e = MySqlError::Tls {
            address: "db:3306".into(),
            failure: tributary_core::TlsFailure::UnknownCa { ca: Some("/ca.pem".into()) },
        };
        assert_eq!(e.class(), ErrorClass::NeedsOperator);
        let text = e.to_string();
        assert!(text.starts_with("TLS to MySQL at db:3306: ") && text.contains("set ssl_ca"), "{text}");
    }
}
