//! `make bench`: rows/s, CPU µs per row, MB/s of WAL and peak RSS of the
//! release binary streaming PostgreSQL (pgoutput) into Delta, for (a) 1M
//! inserts, (b) 200k updates + 50k deletes over the 1M-row table in contiguous
//! id ranges, (b2) 80k updates + 20k deletes of uniformly random ids in
//! transactions of 1000 keys, and (c) the initial snapshot of the table left. Same workloads and harness as `binlog_to_delta`: the
//! slot exists and the WAL is written before the pipeline starts, so the time
//! is the catch-up (the server's walsender decodes the retained WAL meanwhile,
//! on the same machine); it runs from process start to the Delta commit of the
//! last source transaction.
//!
//! Between scenarios the slot is let catch up (see [`settle`]), and the
//! config writes a heartbeat every second so that the pipeline confirms its
//! position promptly; the time is not counted.
//!
//! `TRIBUTARY_LOG` is passed to the pipeline (default `warn`); the pipeline's
//! pid is printed on stderr, to attach a profiler.

mod common;

use common::{print_figures, random_ids, stop, wait, APP, RANDOM_TXNS, RANDOM_TXN_DELETES, RANDOM_TXN_KEYS};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};
use tributary_testkit::postgres::{PgDatabase, Postgres, REPLICATION_PASSWORD, REPLICATION_USER};
use tributary_testkit::TestDir;

const SLOT: &str = "bench";
const ROWS: u64 = 1_000_000;
const TXN_ROWS: u64 = 10_000;

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` lists benches; nothing to list here.
    }
    let server = Postgres::start().expect("start PostgreSQL");
    let db = server.create_database().expect("create the bench database");
    // Owned by the replication role: the source creates the publication for it.
    sql_as_replicator(
        &db,
        "CREATE TABLE public.t (id BIGINT PRIMARY KEY, a INT, b VARCHAR(40), c NUMERIC(12,2), d TIMESTAMP(6))",
    );
    let dir = TestDir::new().unwrap();
    let config = write_config(dir.path(), &server, &db);
    let table = dir.path().join("lake/public/t");

    // Empty snapshot: creates the publication and the slot; the table starts
    // at the slot's consistent point, and the slot keeps the WAL from there.
    let before = lsn_now(&db);
    let mut pipeline = start(&config, "setup");
    wait(&mut pipeline, &table, before);
    stop(pipeline);

    // (a) 1M inserts, 100 transactions of 10k rows.
    let start_lsn = lsn_now(&db);
    let inserts: Vec<String> = (1..=ROWS)
        .step_by(TXN_ROWS as usize)
        .map(|first| {
            let last = first + TXN_ROWS - 1;
            format!(
                "INSERT INTO public.t SELECT g, g % 1000, 'row-' || g, g / 100.0, \
                 TIMESTAMP '2024-01-01 00:00:00' + g * INTERVAL '1 second' FROM generate_series({first}, {last}) g"
            )
        })
        .collect();
    let target = run_transactions(&db, &inserts);
    let wal = lsn_now(&db) - start_lsn;
    print_slot(&db, "inserts");
    report(&db, "inserts", ROWS, &config, &table, target + 1, Some(wal));

    // (b) per 50k keys: one transaction updating every 5th row (10k), one
    // deleting every 20th (2.5k): 200k updates + 50k deletes in 40 transactions.
    let start_lsn = lsn_now(&db);
    let mut mix = Vec::new();
    for first in (1..=ROWS).step_by(TXN_ROWS as usize * 5) {
        let last = first + TXN_ROWS * 5 - 1;
        mix.push(format!(
            "UPDATE public.t SET a = a + 1, b = b || '-u' WHERE id BETWEEN {first} AND {last} AND id % 5 = 0"
        ));
        mix.push(format!("DELETE FROM public.t WHERE id BETWEEN {first} AND {last} AND id % 20 = 1"));
    }
    let target = run_transactions(&db, &mix);
    let wal = lsn_now(&db) - start_lsn;
    print_slot(&db, "updates+deletes");
    report(&db, "updates+deletes", 250_000, &config, &table, target + 1, Some(wal));

    // (b2) random keys: per transaction 800 updates and 200 deletes of distinct
    // ids drawn from the whole table (never one deleted before).
    let start_lsn = lsn_now(&db);
    let mut deleted: HashSet<u64> = HashSet::new();
    let mut state = 7u64;
    let mut random = Vec::new();
    for _ in 0..RANDOM_TXNS {
        let ids = random_ids(&mut state, RANDOM_TXN_KEYS, ROWS, |id| id % 20 != 1 && !deleted.contains(&id));
        let (gone, kept) = ids.split_at(RANDOM_TXN_DELETES);
        deleted.extend(gone);
        let list = |ids: &[u64]| ids.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
        random.push(format!(
            "BEGIN; UPDATE public.t SET a = a + 1, b = b || '-r' WHERE id IN ({}); \
             DELETE FROM public.t WHERE id IN ({}); COMMIT",
            list(kept),
            list(gone)
        ));
    }
    let target = run_transactions(&db, &random);
    let wal = lsn_now(&db) - start_lsn;
    print_slot(&db, "random upd+del");
    let random_rows = (RANDOM_TXNS * RANDOM_TXN_KEYS) as u64;
    report(&db, "random upd+del", random_rows, &config, &table, target + 1, Some(wal));

    // (c) the initial snapshot of the 950k rows left, into an empty lake,
    // through a new slot's exported snapshot (as on a first start).
    std::fs::remove_dir_all(dir.path().join("lake")).unwrap();
    drop_slot(&db);
    db.exec("VACUUM ANALYZE public.t").unwrap();
    let rows: u64 = db.exec("SELECT count(*) FROM public.t").unwrap().trim().parse().unwrap();
    let before = lsn_now(&db);
    report(&db, "snapshot", rows, &config, &table, before, None);
}

/// Runs each statement as its own transaction; returns the WAL position
/// before the last one: the workload is in Delta once a table's committed
/// version is past it.
fn run_transactions(db: &PgDatabase<'_>, statements: &[String]) -> i64 {
    let (last, rest) = statements.split_last().expect("a workload");
    for statement in rest {
        sql(db, statement);
    }
    let before = lsn_now(db);
    sql(db, last);
    before
}

fn report(db: &PgDatabase<'_>, name: &str, rows: u64, config: &Path, table: &Path, target: i64, wal: Option<i64>) {
    let started = Instant::now();
    let mut pipeline = start(config, name);
    let catch_up = wait(&mut pipeline, table, target);
    let secs = started.elapsed().as_secs_f64();
    if std::env::var_os("TRIBUTARY_BENCH_NO_SETTLE").is_none() {
        settle(db, &mut pipeline, name);
    }
    stop(pipeline);
    let wal = match wal {
        None => "read with SELECT".to_string(),
        Some(bytes) => format!("{:.1} MB/s of WAL ({bytes} bytes)", bytes as f64 / secs / 1e6),
    };
    print_figures(name, rows, secs, &catch_up, &wal);
}

fn write_config(dir: &Path, server: &Postgres, db: &PgDatabase<'_>) -> PathBuf {
    let text = format!(
        "[pipeline]\nname = \"{APP}\"\n\
         [source.postgres]\nhost = \"127.0.0.1\"\nport = {}\nuser = \"{REPLICATION_USER}\"\n\
         password = \"{REPLICATION_PASSWORD}\"\ndatabase = \"{}\"\nslot = \"{SLOT}\"\npublication = \"{SLOT}\"\n\
         include = [\"public.t\"]\nheartbeat_secs = 1\n\
         [sink.delta]\nroot = \"{}\"\n[metrics]\nlisten = \"127.0.0.1:0\"\n",
        server.port(),
        db.name(),
        dir.join("lake").display()
    );
    let path = dir.join("pipeline.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn start(config: &Path, scenario: &str) -> Child {
    let child = common::start(config);
    eprintln!("pg_to_delta: {scenario}: pipeline pid {}", child.id());
    child
}

fn sql(db: &PgDatabase<'_>, text: &str) -> String {
    db.exec(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn sql_as_replicator(db: &PgDatabase<'_>, text: &str) -> String {
    db.exec_as_replicator(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// The WAL insert position now, as a txn version.
fn lsn_now(db: &PgDatabase<'_>) -> i64 {
    let text = sql(db, "SELECT pg_current_wal_insert_lsn() - '0/0'::pg_lsn");
    text.trim().parse::<f64>().expect("numeric LSN") as i64
}

/// Lets the slot catch up with the pipeline before it stops (untimed): a
/// checkpoint logs the running transactions, and once the pipeline has
/// confirmed past that record the server moves the slot's `restart_lsn` up to
/// it. Otherwise the next start would first re-decode all the WAL since the
/// slot was created (set `TRIBUTARY_BENCH_NO_SETTLE` to measure that).
fn settle(db: &PgDatabase<'_>, pipeline: &mut Child, scenario: &str) {
    let before = lsn_now(db);
    sql(db, "CHECKPOINT");
    let deadline = Instant::now() + Duration::from_secs(60);
    let query =
        format!("SELECT COALESCE(restart_lsn - '0/0'::pg_lsn, 0) FROM pg_replication_slots WHERE slot_name = '{SLOT}'");
    loop {
        assert!(pipeline.try_wait().unwrap().is_none(), "pipeline exited early");
        if sql(db, &query).trim().parse::<f64>().unwrap_or(0.0) as i64 >= before {
            return;
        }
        if Instant::now() > deadline {
            eprintln!("pg_to_delta: {scenario}: the slot's restart_lsn did not reach the checkpoint in 60 s");
            return print_slot(db, scenario);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Where the slot stands before a run (on stderr): the walsender decodes the
/// WAL from `restart_lsn` on, but sends only transactions that commit after
/// `confirmed_flush_lsn` (and after the position the pipeline asks for).
fn print_slot(db: &PgDatabase<'_>, scenario: &str) {
    let text = sql(
        db,
        &format!(
            "SELECT restart_lsn, confirmed_flush_lsn, pg_current_wal_insert_lsn(), \
             pg_current_wal_insert_lsn() - restart_lsn FROM pg_replication_slots WHERE slot_name = '{SLOT}'"
        ),
    );
    let cols: Vec<&str> = text.trim().split('\t').collect();
    if let [restart, confirmed, now, behind] = cols[..] {
        eprintln!(
            "pg_to_delta: {scenario}: slot restart_lsn {restart}, confirmed_flush_lsn {confirmed}, WAL now {now}: \
             {:.1} MB of WAL to decode",
            behind.parse::<f64>().unwrap_or(0.0) / 1e6
        );
    }
}

/// Drops the bench slot once its walsender has let go of it.
fn drop_slot(db: &PgDatabase<'_>) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        sql(
            db,
            &format!(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots \
                 WHERE slot_name = '{SLOT}' AND NOT active"
            ),
        );
        let left = sql(db, &format!("SELECT count(*) FROM pg_replication_slots WHERE slot_name = '{SLOT}'"));
        if left.trim() == "0" {
            return;
        }
        assert!(Instant::now() < deadline, "slot {SLOT} still active after 30 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}
