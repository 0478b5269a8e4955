//! Connections to the source: an ordinary SQL session (tokio-postgres) and the
//! connection string of the replication session (pg_walstream), both with
//! TLS as `source.ssl_mode` asks, and the negotiated TLS version.

use crate::config::PostgresSourceConfig;
use crate::error::{one_line, PostgresError};
use crate::tls::RustlsConnect;
use std::time::Duration;
use tokio_postgres::config::SslMode as PgSslMode;
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;
use tributary_core::{tls, SslMode, TlsFailure};

/// Opens an SQL session; the connection task runs until the client is dropped.
/// `prefer` falls back to an unencrypted session when the TLS handshake
/// fails, as libpq does.
pub async fn connect(cfg: &PostgresSourceConfig) -> Result<Client, PostgresError> {
    let tls = cfg.tls();
    let connector = RustlsConnect::new(&tls)
        .map_err(|e| PostgresError::Config { field: format!("source.{}", e.field), problem: e.problem })?;
    let mut pg = tokio_postgres::Config::new();
    pg.host(&cfg.host)
        .port(cfg.port)
        .user(&cfg.user)
        .password(cfg.password.expose())
        .dbname(&cfg.database)
        .application_name("tributary")
        .connect_timeout(Duration::from_secs(cfg.connect_timeout_secs))
        .ssl_mode(match tls.effective_mode() {
            SslMode::Disable => PgSslMode::Disable,
            SslMode::Prefer => PgSslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => PgSslMode::Require,
        });
    let (client, connection) = match pg.connect(connector.clone()).await {
        Ok(session) => session,
        Err(e) if tls.effective_mode() == SslMode::Prefer && tls_failure(cfg, &e).is_some() => {
            tracing::debug!(error = %one_line(&e), "TLS handshake failed (ssl_mode = prefer): connecting unencrypted");
            pg.ssl_mode(PgSslMode::Disable).connect(connector).await.map_err(|e| connect_error(cfg, &e))?
        }
        Err(e) => return Err(connect_error(cfg, &e)),
    };
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %one_line(&e), "PostgreSQL session ended");
        }
    });
    exempt_from_idle_timeout(&client).await?;
    Ok(client)
}

/// Tributary holds SQL sessions idle on purpose: the preflight session is
/// used again after the whole initial copy, the catalog session waits for the
/// next relation message, the heartbeat's for its next tick, a snapshot
/// transaction for the Delta writer. A role or database
/// `idle_session_timeout` / `idle_in_transaction_session_timeout` (often set
/// on managed services) would end them mid-start, so each session turns
/// both off for itself, as pg_dump does. A server older than 14 lacks the
/// first; preflight refuses it with its own message.
async fn exempt_from_idle_timeout(client: &Client) -> Result<(), PostgresError> {
    match client.batch_execute("SET idle_session_timeout = 0; SET idle_in_transaction_session_timeout = 0").await {
        Ok(()) => Ok(()),
        Err(e) if e.code() == Some(&SqlState::UNDEFINED_OBJECT) => Ok(()),
        Err(e) => Err(PostgresError::query("turn off the idle timeouts for this session", e)),
    }
}

/// The session's encryption as the server sees it: `TLS 1.3`, or `not encrypted`.
pub async fn tls_version(client: &Client) -> Result<String, PostgresError> {
    let row = client
        .query_opt("SELECT version FROM pg_stat_ssl WHERE pid = pg_backend_pid() AND ssl", &[])
        .await
        .map_err(|e| PostgresError::query("read the session's TLS version", e))?;
    let version: Option<String> = row.and_then(|r| r.get(0));
    Ok(tls::describe_version(version.as_deref()))
}

/// The TLS problem `e` reports, if it is one.
fn tls_failure(cfg: &PostgresSourceConfig, e: &tokio_postgres::Error) -> Option<TlsFailure> {
    let tls = cfg.tls();
    if let Some(db) = e.as_db_error() {
        // pg_hba.conf has only `hostssl` lines for us: "... no encryption".
        let refused_plain = *db.code() == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
            && db.message().contains("no encryption")
            && !tls.effective_mode().requires_tls();
        return refused_plain.then_some(TlsFailure::ServerRequiresTls);
    }
    if tls.effective_mode() == SslMode::Disable {
        return None;
    }
    TlsFailure::from_error(e, &cfg.host, tls.ssl_ca.as_deref())
        .or_else(|| TlsFailure::from_text(&one_line(e), &cfg.host, tls.ssl_ca.as_deref(), tls.effective_mode()))
}

/// Names the cause of a failed connection: TLS, credentials, database, or reachability.
fn connect_error(cfg: &PostgresSourceConfig, e: &tokio_postgres::Error) -> PostgresError {
    if let Some(failure) = tls_failure(cfg, e) {
        return PostgresError::Tls { address: cfg.address(), failure };
    }
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

/// The key/value connection string of a logical replication session, with
/// the TLS mode the SQL sessions use (`require` with `ssl_ca` spelled
/// `verify-ca`, which is what libpq makes of it) and `ssl_ca` as
/// `sslrootcert`. pg_walstream 0.9 cannot present a client certificate, so
/// `ssl_cert` / `ssl_key` are not passed on.
pub fn replication_conninfo(cfg: &PostgresSourceConfig) -> String {
    let tls = cfg.tls();
    let mut text = format!(
        "host={} port={} user={} password={} dbname={} replication=database sslmode={} connect_timeout={} application_name=tributary",
        quote(&cfg.host),
        cfg.port,
        quote(&cfg.user),
        quote(cfg.password.expose()),
        quote(&cfg.database),
        tls.effective_mode(),
        cfg.connect_timeout_secs
    );
    if let Some(ca) = &tls.ssl_ca {
        text.push_str(&format!(" sslrootcert={}", quote(&ca.to_string_lossy())));
    }
    text
}

/// The TLS problem a replication-session error (flattened to text by
/// pg_walstream) reports, as a typed error; `None` when it is something else.
pub fn replication_tls_error(cfg: &PostgresSourceConfig, text: &str) -> Option<PostgresError> {
    let tls = cfg.tls();
    if tls.effective_mode() == SslMode::Disable {
        return text
            .contains("no encryption")
            .then(|| PostgresError::Tls { address: cfg.address(), failure: TlsFailure::ServerRequiresTls });
    }
    TlsFailure::from_text(text, &cfg.host, tls.ssl_ca.as_deref(), tls.effective_mode())
        .map(|failure| PostgresError::Tls { address: cfg.address(), failure })
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
        assert!(text.contains("sslmode=prefer"), "{text}");
    }

    #[test]
    fn conninfo_carries_the_effective_ssl_mode_and_the_ca() {
        let mut cfg = PostgresSourceConfig::new("cdc", "shop", vec!["public.*".into()]);
        cfg.ssl_mode = SslMode::Require;
        assert!(replication_conninfo(&cfg).contains("sslmode=require"));
        assert!(!replication_conninfo(&cfg).contains("sslrootcert"));
        cfg.ssl_ca = Some("/etc/it's/ca.pem".into());
        let text = replication_conninfo(&cfg);
        assert!(text.contains("sslmode=verify-ca") && text.contains(r"sslrootcert='/etc/it\'s/ca.pem'"), "{text}");
        cfg.ssl_mode = SslMode::VerifyFull;
        cfg.ssl_cert = Some("/c.pem".into());
        cfg.ssl_key = Some("/k.pem".into());
        let text = replication_conninfo(&cfg);
        assert!(text.contains("sslmode=verify-full") && !text.contains("c.pem"), "{text}");
        cfg.ssl_mode = SslMode::Disable;
        assert!(replication_conninfo(&cfg).contains("sslmode=disable"));
    }

    #[test]
    fn replication_tls_errors_are_typed() {
        let mut cfg = PostgresSourceConfig::new("cdc", "shop", vec!["public.*".into()]);
        cfg.ssl_mode = SslMode::VerifyFull;
        let e = replication_tls_error(&cfg, "TLS handshake failed: invalid peer certificate: UnknownIssuer").unwrap();
        assert!(matches!(e, PostgresError::Tls { failure: TlsFailure::UnknownCa { .. }, .. }), "{e}");
        assert!(replication_tls_error(&cfg, "connection refused").is_none());
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(qualified(&tributary_core::TableId::new("public", "we\"ird")), "\"public\".\"we\"\"ird\"");
    }
}
