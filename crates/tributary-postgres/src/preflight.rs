//! Checks, before anything is created or written, that the server and the
//! selected tables allow exactly-once CDC; each failure names the setting to
//! change.

use crate::config::PostgresSourceConfig;
use crate::connect::{connect, tls_version};
use crate::error::PostgresError;
use crate::schema_loader::{load_tables, ReplicaIdentity, SourceTable};
use tokio_postgres::Client;

/// Oldest supported server (`server_version_num`): pgoutput with `messages` needs 14.
pub const MIN_SERVER_VERSION: i32 = 140_000;

/// What the preflight found.
#[derive(Debug, Clone)]
pub struct PreflightReport {
    pub server_version: String,
    /// The SQL session's encryption: `TLS 1.3`, or `not encrypted`.
    pub tls: String,
    pub wal_level: String,
    /// Whether the slot already exists (streaming resumes from it).
    pub slot_exists: bool,
    pub tables: usize,
}

/// The preflight result: the report and the selected tables.
pub struct Preflight {
    pub report: PreflightReport,
    pub tables: Vec<SourceTable>,
    pub client: Client,
}

/// Connects and checks settings, role, slot capacity and every selected table.
pub async fn preflight(cfg: &PostgresSourceConfig) -> Result<Preflight, PostgresError> {
    let client = connect(cfg).await?;
    let tls = tls_version(&client).await?;
    if cfg.ssl_cert.is_some() {
        tracing::warn!(
            "source.ssl_cert is presented by the SQL sessions only: the replication session (pg_walstream 0.9) \
             cannot present a client certificate, so pg_hba.conf must accept it with a password"
        );
    }
    let version_num: i32 = show(&client, "server_version_num").await?.parse().unwrap_or(0);
    let server_version = show(&client, "server_version").await?;
    if version_num < MIN_SERVER_VERSION {
        return Err(PostgresError::Setting {
            name: "server_version".into(),
            found: server_version,
            expected: "14 or later".into(),
            fix: "upgrade the server; pgoutput logical messages need PostgreSQL 14+".into(),
        });
    }
    if cfg.publish == crate::config::PublicationScope::Schemas && version_num < 150_000 {
        return Err(PostgresError::Setting {
            name: "server_version".into(),
            found: server_version,
            expected: "15 or later for source.publish = \"schemas\"".into(),
            fix: "set source.publish = \"tables\" (a table created later then joins at the next start), or upgrade \
                  the server: FOR TABLES IN SCHEMA publications need PostgreSQL 15+"
                .into(),
        });
    }
    let wal_level = show(&client, "wal_level").await?;
    if wal_level != "logical" {
        return Err(PostgresError::Setting {
            name: "wal_level".into(),
            found: wal_level,
            expected: "logical".into(),
            fix: "set wal_level = logical in postgresql.conf (ALTER SYSTEM SET wal_level = logical) and restart the server".into(),
        });
    }
    let date_style = show(&client, "DateStyle").await?;
    if !date_style.starts_with("ISO") {
        return Err(PostgresError::Setting {
            name: "DateStyle".into(),
            found: date_style,
            expected: "ISO, MDY".into(),
            fix: format!(
                "run ALTER ROLE {} SET DateStyle = 'ISO, MDY' (dates are decoded from their ISO text form)",
                cfg.user
            ),
        });
    }
    // At 0 or below, real / double precision values are printed rounded to 6 / 15
    // digits (1.7976931348623157e308 as 1.79769313486232e+308, which reads back as
    // infinity): the walsender and the snapshot session both print with this setting.
    let float_digits = show(&client, "extra_float_digits").await?;
    if float_digits.trim().parse::<i32>().map_or(true, |d| d < 1) {
        return Err(PostgresError::Setting {
            name: "extra_float_digits".into(),
            found: float_digits,
            expected: "1 or more (the default)".into(),
            fix: format!(
                "run ALTER ROLE {} SET extra_float_digits = 1, or remove the setting that lowers it \
                 (below 1, PostgreSQL prints real and double precision values rounded)",
                cfg.user
            ),
        });
    }
    let role = client
        .query_one("SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user", &[])
        .await
        .map_err(|e| PostgresError::query("read the role's attributes", e))?;
    if !role.get::<_, bool>(0) {
        return Err(PostgresError::NoReplicationRole { user: cfg.user.clone() });
    }
    let slot_exists = check_slot(&client, cfg).await?;
    crate::publication::check_existing(&client, &cfg.publication).await?;

    let tables = load_tables(&client, &cfg.table_filter()?).await?;
    if tables.is_empty() {
        return Err(PostgresError::NoTables { include: cfg.include.clone(), database: cfg.database.clone() });
    }
    for table in &tables {
        check_replica_identity(table)?;
    }
    let report =
        PreflightReport { server_version, tls, wal_level: "logical".into(), slot_exists, tables: tables.len() };
    Ok(Preflight { report, tables, client })
}

/// A table whose updates and deletes PostgreSQL cannot publish is refused:
/// once it joins a publication, the server would reject those statements.
fn check_replica_identity(table: &SourceTable) -> Result<(), PostgresError> {
    let name = table.schema.id.to_string();
    let problem = match table.replica_identity {
        ReplicaIdentity::Default if !table.has_primary_key => {
            "has no primary key and REPLICA IDENTITY DEFAULT, so PostgreSQL cannot publish its updates and deletes"
        }
        ReplicaIdentity::Nothing => {
            "has REPLICA IDENTITY NOTHING, so PostgreSQL cannot publish its updates and deletes"
        }
        _ => return Ok(()),
    };
    Err(PostgresError::ReplicaIdentity {
        table: name.clone(),
        problem: format!(
            "{problem}; add a primary key, or run ALTER TABLE {name} REPLICA IDENTITY FULL, or exclude it with source.exclude"
        ),
    })
}

/// Checks an existing slot is ours to use (pgoutput, this database, idle), or
/// that a new one fits under `max_replication_slots`. Returns whether it exists.
async fn check_slot(client: &Client, cfg: &PostgresSourceConfig) -> Result<bool, PostgresError> {
    let slot = client
        .query_opt(
            "SELECT plugin::text, database::text, active, active_pid FROM pg_replication_slots WHERE slot_name = $1",
            &[&cfg.slot],
        )
        .await
        .map_err(|e| PostgresError::query("read pg_replication_slots", e))?;
    let slot_error = |problem: String| PostgresError::Slot { slot: cfg.slot.clone(), problem };
    if let Some(row) = slot {
        let plugin: Option<String> = row.get(0);
        let database: Option<String> = row.get(1);
        if plugin.as_deref() != Some("pgoutput") || database.as_deref() != Some(cfg.database.as_str()) {
            return Err(slot_error(format!(
                "exists with plugin {} on database {}, but Tributary needs a pgoutput slot on {}; choose another source.slot or drop it",
                plugin.unwrap_or_else(|| "none (physical)".into()),
                database.unwrap_or_else(|| "none".into()),
                cfg.database
            )));
        }
        if row.get::<_, bool>(2) {
            let pid: Option<i32> = row.get(3);
            return Err(slot_error(format!(
                "is in use by another process (pid {}); stop the other consumer or choose another source.slot",
                pid.unwrap_or(0)
            )));
        }
        return Ok(true);
    }
    let max: i64 = show(client, "max_replication_slots").await?.parse().unwrap_or(0);
    let used: i64 = client
        .query_one("SELECT count(*) FROM pg_replication_slots", &[])
        .await
        .map_err(|e| PostgresError::query("count replication slots", e))?
        .get(0);
    if used >= max {
        return Err(PostgresError::Setting {
            name: "max_replication_slots".into(),
            found: format!("{max} (all in use)"),
            expected: "a free slot".into(),
            fix:
                "drop an unused slot (SELECT pg_drop_replication_slot(name)) or raise max_replication_slots and restart"
                    .into(),
        });
    }
    Ok(false)
}

/// `SHOW name`.
pub async fn show(client: &Client, name: &str) -> Result<String, PostgresError> {
    let row = client
        .query_one(&format!("SHOW {name}"), &[])
        .await
        .map_err(|e| PostgresError::query(format!("SHOW {name}"), e))?;
    Ok(row.get(0))
}
