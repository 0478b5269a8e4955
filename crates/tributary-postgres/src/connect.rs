//! Connections to the source: an ordinary SQL session (tokio-postgres) and the
//! connection string of the replication session (pg_walstream).

use crate::config::PostgresSourceConfig;
use crate::error::{one_line, PostgresError};
use std::time::Duration;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

/// Opens an SQL session; the connection task runs until the client is dropped.
pub async fn connect(cfg: &PostgresSourceConfig) -> Result<Client, PostgresError> {
    let mut pg = tokio_postgres::Config::new();
    pg.host(&cfg.host)
        .port(cfg.port)
        .user(&cfg.user)
        .password(cfg.password.expose())
        .dbname(&cfg.database)
        .application_name("tributary")
        .connect_timeout(Duration::from_secs(cfg.connect_timeout_secs));
    let (client, connection) = pg.connect(NoTls).await.map_err(|e| connect_error(cfg, &e))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %one_line(&e), "PostgreSQL session ended");
        }
    });
    Ok(client)
}

/// Names the cause of a failed connection: credentials, database, or reachability.
fn connect_error(cfg: &PostgresSourceConfig, e: &tokio_postgres::Error) -> PostgresError {
    match e.code() {
        // PostgreSQL answers a wrong password and an unknown role alike (28P01).
        Some(code) if *code == SqlState::INVALID_PASSWORD => PostgresError::AccessDenied { user: cfg.user.clone() },
        // 28000: pg_hba.conf has no entry for this host / user / database, or the role cannot log in.
        Some(code) if *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION => {
            let reason = e.as_db_error().map_or_else(|| one_line(e), |db| db.message().to_string());
            PostgresError::LoginRefused { user: cfg.user.clone(), reason }
        }
        Some(code) if *code == SqlState::INVALID_CATALOG_NAME => {
            PostgresError::NoDatabase { database: cfg.database.clone() }
        }
        _ => PostgresError::Connect { address: cfg.address(), reason: one_line(e) },
    }
}

/// The key/value connection string of a logical replication session.
pub fn replication_conninfo(cfg: &PostgresSourceConfig) -> String {
    format!(
        "host={} port={} user={} password={} dbname={} replication=database sslmode=disable connect_timeout={} application_name=tributary",
        quote(&cfg.host),
        cfg.port,
        quote(&cfg.user),
        quote(cfg.password.expose()),
        quote(&cfg.database),
        cfg.connect_timeout_secs
    )
}

/// A conninfo value in single quotes, with `\` and `'` escaped.
fn quote(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// An SQL identifier in double quotes.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `"schema"."table"`.
pub fn qualified(table: &tributary_core::TableId) -> String {
    format!("{}.{}", quote_ident(&table.schema), quote_ident(&table.name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conninfo_values_are_quoted_and_escaped() {
        let mut cfg = PostgresSourceConfig::new("cdc", "shop", vec!["public.*".into()]);
        cfg.password = tributary_core::Secret::new("it's a \\ secret");
        let text = replication_conninfo(&cfg);
        assert!(text.contains(r"password='it\'s a \\ secret'"), "{text}");
        assert!(text.contains("replication=database"));
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(qualified(&tributary_core::TableId::new("public", "we\"ird")), "\"public\".\"we\"\"ird\"");
    }
}
