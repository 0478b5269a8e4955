//! The chunked initial snapshot on PostgreSQL (docs/snapshots.md): a big
//! table copied by two connections in primary-key chunks, each a short
//! statement of its own (no transaction stays open for the copy), while a
//! mixed workload writes to it, killed with -9 at five moments of the copy;
//! each restart continues from the last committed chunk on the same slot,
//! and at the end the mirror equals the source row by row, the change feed
//! after the hand-over is exact and Spark reads the same. A column added or
//! dropped during the copy ends equal to the source too (PostgreSQL sends no
//! DDL: Tributary learns of it from the next relation message).
//!
//! `TRIBUTARY_TEST_SNAPSHOT_ROWS` sets the table size (default 2,000,000).

mod common;

use common::chunked_copy::{
    assert_feed_is, copy_through_kills, delta_version, rows, snapshot_done, tune_config, wait_long,
};
use common::pg::*;
use common::workload::Workload;
use common::*;

const KILLS: usize = 5;

#[test]
fn a_chunked_copy_under_writes_survives_five_kill_9_and_ends_equal_to_the_source() {
    let Some(python) = python() else { return };
    let Some(server) = postgres() else { return };
    let n = rows();
    let db = server.create_database().unwrap();
    sql(&db, "CREATE TABLE t (id BIGINT PRIMARY KEY, v INT NOT NULL, w TEXT)");
    sql(&db, &format!("INSERT INTO t SELECT i, 0, 'w' || i FROM generate_series(1, {n}) AS i; ANALYZE t"));
    let dir = test_dir();
    let config = write_pg_config(dir.path(), &server, &db, "public.t", "snapshot_parallelism = 2");
    tune_config(&config, n);
    let path = table_path(dir.path(), "public", "t");

    let (port, database) = (server.port(), db.name().to_string());
    let workload = Workload::start(n, move |sql| pg_try_exec(port, &database, sql));
    let mut pipeline = copy_through_kills(&config, &path, n, KILLS);
    assert_eq!(slot_count(&db), 1, "one slot across the restarts");
    let confirmed = workload.finish();
    wait_long(&mut pipeline, &path, lsn_now(&db) + 1);
    let source = pg_lines(&db, "SELECT id, md5(concat_ws('|', id, v, w)) FROM t ORDER BY id");
    let mirror = mirror_checksums(&python, &path);
    assert_eq!(mirror.len(), source.len(), "row count (a duplicated or lost key)");
    assert!(mirror == source, "mirror = source, row by row");
    eprintln!("{confirmed} workload transactions; mirror = source ({} rows)", source.len());

    // After the hand-over the change feed is exact: 100 inserts, 50 updates, 30 deletes.
    let handed_over = delta_version(&path);
    let top = n as i64 + 10_000_000;
    let inserted: Vec<i64> = (1..=100).map(|i| top + i).collect();
    sql(&db, &format!("INSERT INTO t SELECT i, 7, 'late' FROM generate_series({}, {}) AS i", top + 1, top + 100));
    let updated: Vec<i64> = inserted[30..80].to_vec();
    for id in &updated {
        sql(&db, &format!("UPDATE t SET v = v + 1000 WHERE id = {id}"));
    }
    let deleted: Vec<i64> = inserted[..30].to_vec();
    let lsn = change(&db, &format!("DELETE FROM t WHERE id BETWEEN {} AND {}", deleted[0], deleted[29]));
    wait_past(&mut pipeline, &path, lsn);
    let feed = change_feed(&python, &path, handed_over + 1);
    assert_feed_is(&feed, &inserted, &updated, &deleted);
    if let Some(spark) = spark("chunked snapshot") {
        let count: u64 = pg_lines(&db, "SELECT count(*) FROM t")[0].parse().unwrap();
        assert_eq!(spark.count(&path).unwrap(), count, "Spark reads the mirror");
        let cdf = spark.cdf_count(&path, handed_over + 1, None).unwrap();
        assert_eq!(cdf, feed.len() as u64, "Spark reads the same change feed after the hand-over");
    }
    assert!(pipeline.stop().success());
}

/// A table without a primary key whose replica identity is a unique index
/// is keyed by that index (docs/postgres.md), so it is copied in chunks of
/// it like a table with a primary key, and ends equal to the source.
#[test]
fn a_table_keyed_by_its_replica_identity_index_is_copied_in_chunks() {
    let Some(python) = python() else { return };
    let Some(server) = postgres() else { return };
    let db = server.create_database().unwrap();
    sql(&db, "CREATE TABLE t (id BIGINT NOT NULL, v INT NOT NULL, w TEXT); CREATE UNIQUE INDEX t_id ON t (id)");
    sql(&db, "ALTER TABLE t REPLICA IDENTITY USING INDEX t_id");
    sql(&db, "INSERT INTO t SELECT i, 0, 'w' || i FROM generate_series(1, 40000) AS i; ANALYZE t");
    let dir = test_dir();
    let config =
        write_pg_config(dir.path(), &server, &db, "public.t", "snapshot_parallelism = 2\nsnapshot_chunk_rows = 2000");
    let path = table_path(dir.path(), "public", "t");
    let mut pipeline = Pipeline::start(&config);
    wait_past(&mut pipeline, &path, lsn_now(&db));
    let lsn = change(&db, "UPDATE t SET v = 5 WHERE id IN (7, 30000); DELETE FROM t WHERE id = 12");
    wait_past(&mut pipeline, &path, lsn);
    let log = pipeline.log_text();
    assert!(log.contains("chunked snapshot started"), "copied in chunks of the index");
    let source = pg_lines(&db, "SELECT id, md5(concat_ws('|', id, v, w)) FROM t ORDER BY id");
    let mirror = mirror_checksums(&python, &path);
    assert_eq!(mirror.len(), source.len(), "row count");
    assert!(mirror == source, "mirror = source, row by row");
    assert!(pipeline.stop().success());
}

/// Creates `public.t (id BIGINT PRIMARY KEY, <columns>)` with rows `1..=n`
/// (`values`: the other columns' values, an expression of `i`), starts its
/// chunked copy (chunks of 1000, two connections) and returns once its first
/// chunks are committed and the copy is still running.
fn start_slow_copy(
    server: &tributary_testkit::postgres::Postgres,
    db: &tributary_testkit::postgres::PgDatabase<'_>,
    dir: &std::path::Path,
    n: u64,
    columns: &str,
    values: &str,
) -> (Pipeline, std::path::PathBuf) {
    sql(db, &format!("CREATE TABLE t (id BIGINT PRIMARY KEY, {columns})"));
    sql(db, &format!("INSERT INTO t SELECT i, {values} FROM generate_series(1, {n}) AS i; ANALYZE t"));
    let config = write_pg_config(dir, server, db, "public.t", "snapshot_parallelism = 2\nsnapshot_chunk_rows = 1000");
    tune_config(&config, n);
    let path = table_path(dir, "public", "t");
    let mut pipeline = Pipeline::start(&config);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !(tributary_delta::table_exists(&path) && delta_version(&path) >= 1) {
        assert!(std::time::Instant::now() < deadline, "no chunk committed; log:\n{}", pipeline.log_text());
        pipeline.assert_running();
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    (pipeline, config)
}

/// The mirror's `columns` equal the source's `public.t`, row by row (the
/// source's columns rendered as text joined by tabs, NULL as `null`).
fn assert_mirror_equals_source(
    db: &tributary_testkit::postgres::PgDatabase<'_>,
    python: &std::path::Path,
    path: &std::path::Path,
    columns: &[&str],
) {
    let rendered: Vec<String> = columns.iter().map(|c| format!("coalesce({c}::text, 'null')")).collect();
    let source = pg_lines(db, &format!("SELECT concat_ws(E'\\t', {}) FROM t ORDER BY id", rendered.join(", ")));
    let mirror = mirror_lines(python, path, columns);
    assert_eq!(mirror.len(), source.len(), "row count");
    let differing: Vec<_> = source.iter().zip(&mirror).filter(|(s, m)| s != m).take(3).collect();
    assert!(differing.is_empty(), "mirror = source; first differences (source, mirror): {differing:?}");
}

/// PostgreSQL sends no DDL: the added column reaches Tributary in the
/// relation message before the table's next change, and its value in the
/// rows that existed is the catalog's missing value (`attmissingval`). Rows
/// copied before and after that point, and rows changed on both sides of the
/// copy's cursor, all end with the source's values.
#[test]
fn a_column_added_with_a_default_during_the_chunked_copy_ends_equal_to_the_source() {
    let Some(python) = python() else { return };
    let Some(server) = postgres() else { return };
    let db = server.create_database().unwrap();
    let dir = test_dir();
    let (mut pipeline, _config) =
        start_slow_copy(&server, &db, dir.path(), 300_000, "v INT NOT NULL, w TEXT", "0, 'w' || i");
    let path = table_path(dir.path(), "public", "t");
    let lsn = change(
        &db,
        "ALTER TABLE t ADD COLUMN x INT NOT NULL DEFAULT 7; \
         UPDATE t SET x = 8, v = 1 WHERE id % 1000 = 0; DELETE FROM t WHERE id % 1000 = 1",
    );
    assert!(!snapshot_done(&path), "the ALTER came during the copy (make the table larger)");
    wait_long(&mut pipeline, &path, lsn + 1);
    assert_mirror_equals_source(&db, &python, &path, &["id", "v", "w", "x"]);
    assert!(!pipeline.log_text().contains("table stopped"), "{}", pipeline.log_text());
    assert!(pipeline.stop().success());
}

/// A column dropped during the copy fails the next chunk's SELECT (it names
/// the copy's columns): the pipeline stops with the server's error and,
/// chunks being committed, keeps the slot it created; the restart continues
/// the copy on it, makes the dropped NOT NULL column nullable and puts the
/// rest into the Delta table's columns by name.
#[test]
fn a_column_dropped_during_the_chunked_copy_stops_the_copy_and_a_restart_ends_equal_to_the_source() {
    let Some(python) = python() else { return };
    let Some(server) = postgres() else { return };
    let db = server.create_database().unwrap();
    let dir = test_dir();
    let (mut pipeline, config) = start_slow_copy(
        &server,
        &db,
        dir.path(),
        300_000,
        "u INT NOT NULL, v INT NOT NULL, w TEXT",
        "i, i % 7, 'w' || i",
    );
    let path = table_path(dir.path(), "public", "t");
    sql(&db, "ALTER TABLE t DROP COLUMN u; UPDATE t SET w = 'changed' WHERE id % 1000 = 0");
    assert!(!snapshot_done(&path), "the ALTER came during the copy (make the table larger)");
    let status = pipeline.wait_exit(std::time::Duration::from_secs(120));
    let log = pipeline.log_text();
    assert!(status.is_some_and(|s| !s.success()), "the copy stops, non-zero ({status:?}); log:\n{log}");
    assert!(log.contains("\"u\" does not exist"), "the error names the cause; log:\n{log}");
    let mut pipeline = Pipeline::start(&config);
    let lsn = change(&db, "UPDATE t SET v = 100 WHERE id = 5");
    wait_long(&mut pipeline, &path, lsn + 1);
    assert_mirror_equals_source(&db, &python, &path, &["id", "v", "w"]);
    let log = pipeline.log_text();
    assert!(log.contains("nullable from now on") && log.contains("\"u\""), "the restart relaxes `u`; log:\n{log}");
    assert!(log.contains("continues from its last committed chunk"), "the copy continues; log:\n{log}");
    assert_eq!(slot_count(&db), 1, "the slot of the failed first start was kept");
    assert!(pipeline.stop().success());
}

/// A type widened during the copy (`numeric(10,2)` → `numeric(14,2)`) and
/// a column added with a default, then rows given values only the new
/// schema holds: the next chunk cannot be read with the copy's type, so the
/// first start fails with the column named (keeping its slot: chunks are
/// committed); the next start finds the copied rows of the old type, starts
/// the copy over on the same slot and makes the table follow the catalog's
/// schema first. Before 2026-12-05 the slot was dropped, the table kept the
/// old schema and every later start failed ("does not fit decimal(10,2)").
#[test]
fn a_decimal_widened_during_the_chunked_copy_fails_the_first_start_and_the_next_one_copies_it_whole() {
    let Some(python) = python() else { return };
    let Some(server) = postgres() else { return };
    let db = server.create_database().unwrap();
    let dir = test_dir();
    let (mut pipeline, config) =
        start_slow_copy(&server, &db, dir.path(), 300_000, "v INT NOT NULL, d NUMERIC(10,2)", "0, i / 100.0");
    let path = table_path(dir.path(), "public", "t");
    sql(
        &db,
        "ALTER TABLE t ALTER COLUMN d TYPE NUMERIC(14,2), ADD COLUMN x INT NOT NULL DEFAULT 7; \
         UPDATE t SET d = 123456789012.34, x = 8 WHERE id % 1000 = 0",
    );
    assert!(!snapshot_done(&path), "the ALTER came during the copy (make the table larger)");
    let status = pipeline.wait_exit(std::time::Duration::from_secs(120));
    let log = pipeline.log_text();
    assert!(status.is_some_and(|s| !s.success()), "the copy stops, non-zero ({status:?}); log:\n{log}");
    assert!(log.contains("column d") && log.contains("does not fit"), "the error names the column; log:\n{log}");
    let mut pipeline = Pipeline::start(&config);
    let lsn = change(&db, "UPDATE t SET v = 100 WHERE id = 5");
    wait_long(&mut pipeline, &path, lsn + 1);
    assert_mirror_equals_source(&db, &python, &path, &["id", "v", "d", "x"]);
    let log = pipeline.log_text();
    assert!(log.contains("follows the source's schema before it is copied"), "{log}");
    assert!(log.contains("the copy starts over from the first row"), "{log}");
    assert_eq!(slot_count(&db), 1, "the slot of the failed first start was kept");
    assert!(pipeline.stop().success());
}

/// The same widening while the pipeline is down after a kill -9 in the
/// middle of the copy (the slot and the copy's progress are kept): the rows
/// already copied hold the old type, so that table's copy starts over from
/// the first row (logged) instead of failing on every start.
#[test]
fn a_decimal_widened_while_a_copy_was_killed_makes_the_copy_start_over() {
    let Some(python) = python() else { return };
    let Some(server) = postgres() else { return };
    let db = server.create_database().unwrap();
    let dir = test_dir();
    let (pipeline, config) =
        start_slow_copy(&server, &db, dir.path(), 300_000, "v INT NOT NULL, d NUMERIC(10,2)", "0, i / 100.0");
    let path = table_path(dir.path(), "public", "t");
    pipeline.kill9();
    assert!(!snapshot_done(&path), "killed during the copy (make the table larger)");
    sql(&db, "ALTER TABLE t ALTER COLUMN d TYPE NUMERIC(14,2); UPDATE t SET d = 123456789012.34 WHERE id % 1000 = 0");
    let mut pipeline = Pipeline::start(&config);
    let lsn = change(&db, "UPDATE t SET v = 100 WHERE id = 5");
    wait_long(&mut pipeline, &path, lsn + 1);
    assert_mirror_equals_source(&db, &python, &path, &["id", "v", "d"]);
    let log = pipeline.log_text();
    assert!(log.contains("the copy starts over from the first row"), "{log}");
    assert_eq!(slot_count(&db), 1, "the same slot");
    assert!(pipeline.stop().success());
}

/// A copy killed mid-way whose slot is then lost (dropped by hand here) is
/// copied again from the first row on a new slot; a column added in between
/// with a default, and given other values in some rows, reaches the mirror
/// with the source's values: the emptied table follows the catalog's schema
/// before the copy, so the copy reads the column. Before 2026-12-05 the
/// copy left it out: the mirror had no `x` at all (seen with the fix taken
/// out), until a later change of the table would add it with the default.
#[test]
fn a_column_added_before_a_copy_starts_over_on_a_new_slot_keeps_the_values_rows_hold() {
    let Some(python) = python() else { return };
    let Some(server) = postgres() else { return };
    let db = server.create_database().unwrap();
    let dir = test_dir();
    let (pipeline, config) =
        start_slow_copy(&server, &db, dir.path(), 300_000, "v INT NOT NULL, w TEXT", "0, 'w' || i");
    let path = table_path(dir.path(), "public", "t");
    pipeline.kill9();
    assert!(!snapshot_done(&path), "killed during the copy (make the table larger)");
    db.exec(&format!("SELECT pg_drop_replication_slot('{}')", db.name())).unwrap();
    sql(&db, "ALTER TABLE t ADD COLUMN x INT NOT NULL DEFAULT 7; UPDATE t SET x = 8 WHERE id % 1000 = 0");
    let mut pipeline = Pipeline::start(&config);
    let lsn = change(&db, "UPDATE t SET v = 100 WHERE id = 5");
    wait_long(&mut pipeline, &path, lsn + 1);
    assert_mirror_equals_source(&db, &python, &path, &["id", "v", "w", "x"]);
    assert!(pipeline.log_text().contains("follows the source's schema before it is copied"));
    assert!(pipeline.stop().success());
}
