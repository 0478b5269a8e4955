//! PostgreSQL helpers of the integration tests: a server, a database owned by
//! the replication role, a pipeline config for it, and LSN-based waits.

use super::{APP, CATCH_UP};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tributary_testkit::postgres::{PgDatabase, Postgres, REPLICATION_PASSWORD, REPLICATION_USER};
use tributary_testkit::require;

/// A PostgreSQL with logical decoding, or `None` when it cannot start (skipped loudly; fails under CI).
pub fn postgres() -> Option<Postgres> {
    require("PostgreSQL", Postgres::start())
}

/// Runs SQL as the replication role (the owner of the tables the tests create).
pub fn sql(db: &PgDatabase<'_>, text: &str) -> String {
    db.exec_as_replicator(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// The WAL insert position now, as a txn version: a change made after this
/// call is durable in a table once the table's version exceeds it.
pub fn lsn_now(db: &PgDatabase<'_>) -> i64 {
    let text = db.exec("SELECT pg_current_wal_insert_lsn() - '0/0'::pg_lsn").unwrap();
    text.trim().parse::<f64>().expect("numeric LSN") as i64
}

/// Runs `text` and returns the LSN before it, for [`wait_past`].
pub fn change(db: &PgDatabase<'_>, text: &str) -> i64 {
    let before = lsn_now(db);
    sql(db, text);
    before
}

/// Writes a `[source.postgres]` pipeline config into `dir`.
pub fn write_pg_config(
    dir: &Path,
    server: &Postgres,
    db: &PgDatabase<'_>,
    include: &str,
    extra_source: &str,
) -> PathBuf {
    let text = format!(
        r#"
[pipeline]
name = "{APP}"
batch_max_wait_ms = 200

[source.postgres]
host = "127.0.0.1"
port = {port}
user = "{REPLICATION_USER}"
password = "{REPLICATION_PASSWORD}"
database = "{database}"
slot = "{slot}"
publication = "{slot}"
include = ["{include}"]
heartbeat_secs = 1
{extra_source}

[sink.delta]
root = "{root}"
checkpoint_interval = 5

[metrics]
listen = "127.0.0.1:0"
"#,
        port = server.port(),
        database = db.name(),
        slot = db.name(),
        root = dir.join("lake").display(),
    );
    let path = dir.join("pipeline.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Waits until the table's committed position is past `lsn` (see [`change`]).
pub fn wait_past(pipeline: &mut super::Pipeline, path: &Path, lsn: i64) {
    super::wait_committed(pipeline, path, lsn + 1);
}

/// Waits until the slot's confirmed position is at least `lsn`.
pub fn wait_slot_confirmed(db: &PgDatabase<'_>, slot: &str, lsn: i64) {
    wait_slot_confirmed_within(db, slot, lsn, CATCH_UP);
}

/// [`wait_slot_confirmed`] with room `within` (the catch-up of a big copy-on-write table).
pub fn wait_slot_confirmed_within(db: &PgDatabase<'_>, slot: &str, lsn: i64, within: Duration) {
    let start = Instant::now();
    loop {
        let text = db
            .exec(&format!(
                "SELECT COALESCE(confirmed_flush_lsn - '0/0'::pg_lsn, 0) FROM pg_replication_slots WHERE slot_name = '{slot}'"
            ))
            .unwrap();
        if text.trim().parse::<f64>().unwrap_or(0.0) as i64 >= lsn {
            return;
        }
        assert!(start.elapsed() < within, "slot {slot} never confirmed {lsn}: {text}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Number of replication slots on the database.
pub fn slot_count(db: &PgDatabase<'_>) -> usize {
    let text = db.exec(&format!("SELECT count(*) FROM pg_replication_slots WHERE database = '{}'", db.name())).unwrap();
    text.trim().parse().unwrap()
}

/// Source rows of `query` as psql prints them (`-A -t`), one tab-separated line each.
pub fn pg_lines(db: &PgDatabase<'_>, query: &str) -> Vec<String> {
    sql(db, query).lines().map(str::to_string).collect()
}

/// Rewrites the `include` list of a config written by [`write_pg_config`].
pub fn set_include(config: &Path, include: &[&str]) {
    let text = std::fs::read_to_string(config).unwrap();
    let start = text.find("include = [").expect("an include line");
    let end = start + text[start..].find('\n').unwrap();
    let list = include.iter().map(|p| format!("\"{p}\"")).collect::<Vec<_>>().join(", ");
    let text = format!("{}include = [{list}]{}", &text[..start], &text[end..]);
    std::fs::write(config, text).unwrap();
}

/// Waits until the database has exactly `n` replication slots (temporary ones end with their session).
pub fn wait_slot_count(db: &PgDatabase<'_>, n: usize) {
    let start = Instant::now();
    loop {
        let count = slot_count(db);
        if count == n {
            return;
        }
        assert!(start.elapsed() < CATCH_UP, "{count} replication slots, expected {n}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Runs `sql` in `database` as the replication role over TCP (psql); false
/// when the server did not take it (down, restarting, refused).
pub fn pg_try_exec(port: u16, database: &str, sql: &str) -> bool {
    std::process::Command::new("psql")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", REPLICATION_USER, "-d", database])
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .env("PGPASSWORD", REPLICATION_PASSWORD)
        .env("PGCONNECT_TIMEOUT", "2")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}
