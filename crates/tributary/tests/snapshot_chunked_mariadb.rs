//! The chunked initial snapshot on MariaDB (docs/snapshots.md): a big table
//! copied by two connections in primary-key chunks while a mixed workload
//! writes to it, killed with -9 at five moments of the copy; each restart
//! continues from the last committed chunk, and at the end the mirror equals
//! the source row by row, no key is held twice, the change feed after the
//! hand-over is exact and Spark reads the same. The source user has neither
//! RELOAD nor LOCK TABLES: no lock is taken. A table without a primary key
//! but with a NOT NULL unique index is keyed by it: copied in chunks and
//! mirrored; one whose unique index allows NULL, or that gains its index
//! later, stays an append-only changelog.
//!
//! `TRIBUTARY_TEST_SNAPSHOT_ROWS` sets the table size (default 2,000,000).

mod common;

use common::chunked_copy::{
    assert_feed_is, copy_through_kills, delta_version, rows, snapshot_done, tune_config, wait_long,
};
use common::workload::{mariadb_try_exec, Workload};
use common::*;
use std::time::Instant;

const DB: &str = "chunks";
const KILLS: usize = 5;

/// `DB.t (id, v, w)` with rows `1..=n` (`v = 0`), inserted 20,000 at a time.
fn create_table(server: &tributary_testkit::MariaDb, n: u64) {
    server
        .exec(&format!(
            "CREATE DATABASE {DB}; CREATE TABLE {DB}.t (id BIGINT PRIMARY KEY, v INT NOT NULL, w VARCHAR(40))"
        ))
        .unwrap();
    let mut next = 1;
    while next <= n {
        let end = (next + 20_000).min(n + 1);
        server
            .exec(&format!("INSERT INTO {DB}.t SELECT seq, 0, CONCAT('w', seq) FROM {DB}.seq_{next}_to_{}", end - 1))
            .unwrap();
        next = end;
    }
}

#[test]
fn a_chunked_copy_under_writes_survives_five_kill_9_and_ends_equal_to_the_source() {
    let Some(server) = mariadb() else { return };
    let Some(python) = python() else { return };
    let n = rows();
    let started = Instant::now();
    create_table(&server, n);
    eprintln!("{n} rows inserted in {:.1?}", started.elapsed());
    let grants = server.exec(&format!("SHOW GRANTS FOR '{CDC_USER}'@'127.0.0.1'")).unwrap();
    assert!(!grants.contains("RELOAD") && !grants.contains("LOCK TABLES"), "{grants}");

    let dir = test_dir();
    let config = write_config(dir.path(), &server, &format!("{DB}.*"), "");
    set_source(&config, "127.0.0.1", &["snapshot_parallelism = 2".to_string()]);
    tune_config(&config, n);
    let path = table_path(dir.path(), DB, "t");

    let port = server.port();
    let workload = Workload::start(n, move |sql| mariadb_try_exec(port, DB, sql));
    let mut pipeline = copy_through_kills(&config, &path, n, KILLS);
    let confirmed = workload.finish();
    wait_long(&mut pipeline, &path, master_version(&server));
    let source = source_lines(&server, &format!("SELECT id, MD5(CONCAT_WS('|', id, v, w)) FROM {DB}.t ORDER BY id"));
    let mirror = mirror_checksums(&python, &path);
    assert_eq!(mirror.len(), source.len(), "row count (a duplicated or lost key)");
    assert!(mirror == source, "mirror = source, row by row");
    eprintln!("{confirmed} workload transactions; mirror = source ({} rows)", source.len());

    // After the hand-over the change feed is exact: 100 inserts, 50 updates, 30 deletes.
    let handed_over = delta_version(&path);
    let top = n as i64 + 10_000_000;
    let inserted: Vec<i64> = (1..=100).map(|i| top + i).collect();
    let values: Vec<String> = inserted.iter().map(|i| format!("({i}, 7, 'late')")).collect();
    server.exec(&format!("INSERT INTO {DB}.t VALUES {}", values.join(","))).unwrap();
    let updated: Vec<i64> = inserted[30..80].to_vec();
    for id in &updated {
        server.exec(&format!("UPDATE {DB}.t SET v = v + 1000 WHERE id = {id}")).unwrap();
    }
    let deleted: Vec<i64> = inserted[..30].to_vec();
    server.exec(&format!("DELETE FROM {DB}.t WHERE id BETWEEN {} AND {}", deleted[0], deleted[29])).unwrap();
    wait_committed(&mut pipeline, &path, master_version(&server));
    let feed = change_feed(&python, &path, handed_over + 1);
    assert_feed_is(&feed, &inserted, &updated, &deleted);
    if let Some(spark) = spark("chunked snapshot") {
        let count = source_lines(&server, &format!("SELECT COUNT(*) FROM {DB}.t"))[0].parse::<u64>().unwrap();
        assert_eq!(spark.count(&path).unwrap(), count, "Spark reads the mirror");
        let cdf = spark.cdf_count(&path, handed_over + 1, None).unwrap();
        assert_eq!(cdf, feed.len() as u64, "Spark reads the same change feed after the hand-over");
    }
    assert!(pipeline.stop().success());
}

#[test]
fn a_table_keyed_by_a_not_null_unique_index_is_copied_in_chunks_and_mirrored() {
    let Some(server) = mariadb() else { return };
    let Some(python) = python() else { return };
    server
        .exec(
            "CREATE DATABASE uniq; \
             CREATE TABLE uniq.t (id BIGINT NOT NULL, v INT NOT NULL, w VARCHAR(40), UNIQUE KEY t_id (id)); \
             CREATE TABLE uniq.loose (id BIGINT NULL, v INT, UNIQUE KEY (id)); \
             CREATE TABLE uniq.bare (id BIGINT NOT NULL, v INT); \
             INSERT INTO uniq.t SELECT seq, 0, CONCAT('w', seq) FROM uniq.seq_1_to_40000; \
             INSERT INTO uniq.loose VALUES (1, 1), (NULL, 2); INSERT INTO uniq.bare VALUES (1, 1)",
        )
        .unwrap();
    let dir = test_dir();
    // Idle tables' positions follow the source after 2 s (the waits compare them with it).
    let config = write_config(dir.path(), &server, "uniq.*", "idle_commit_secs = 2");
    set_source(
        &config,
        "127.0.0.1",
        &["snapshot_parallelism = 2".to_string(), "snapshot_chunk_rows = 2000".to_string()],
    );
    let path = |table| table_path(dir.path(), "uniq", table);
    let started = Instant::now();
    let mut pipeline = Pipeline::start(&config);
    wait_long(&mut pipeline, &path("t"), master_version(&server));
    eprintln!("copied in {:.1?}", started.elapsed());
    assert!(pipeline.log_text().contains("chunked snapshot started"), "copied in chunks of the unique index");

    // `bare` gains a NOT NULL unique index while streamed: its Delta table
    // stays a changelog (the reloaded schema's key is not taken) and it
    // keeps streaming instead of stopping on a key change.
    server
        .exec(
            "UPDATE uniq.t SET v = 5 WHERE id IN (7, 30000); DELETE FROM uniq.t WHERE id = 12; \
             UPDATE uniq.t SET id = 50000 WHERE id = 20000; \
             UPDATE uniq.loose SET v = 3 WHERE id = 1; \
             ALTER TABLE uniq.bare ADD UNIQUE KEY (id); UPDATE uniq.bare SET v = 2 WHERE id = 1",
        )
        .unwrap();
    let end = master_version(&server);
    for table in ["t", "loose", "bare"] {
        wait_long(&mut pipeline, &path(table), end);
        eprintln!("{table} streamed at {:.1?}", started.elapsed());
    }
    let source = source_lines(&server, "SELECT id, MD5(CONCAT_WS('|', id, v, w)) FROM uniq.t ORDER BY id");
    let mirror = mirror_checksums(&python, &path("t"));
    assert_eq!(mirror.len(), source.len(), "row count");
    assert!(mirror == source, "mirror = source, row by row");
    // Changelogs: the copied rows, then one row per change.
    assert_eq!(mirror_rows(&python, &path("loose")).len(), 3, "a unique index allowing NULL is no key");
    assert_eq!(mirror_rows(&python, &path("bare")).len(), 2, "a key gained later does not make a mirror");
    let log = pipeline.log_text();
    assert!(log.contains("its Delta table is an append-only changelog: it stays one"), "{log}");
    assert!(!log.contains("table stopped"), "no table stopped: {log}");
    assert!(pipeline.stop().success());
}

/// The mirror's `columns` equal the source's `ddl.t`, row by row.
fn assert_mirror_equals_source(
    server: &tributary_testkit::MariaDb,
    python: &std::path::Path,
    path: &std::path::Path,
    columns: &[&str],
) {
    let source = source_lines(server, &format!("SELECT {} FROM ddl.t ORDER BY id", columns.join(", ")));
    let mirror = mirror_lines(python, path, columns);
    assert_eq!(mirror.len(), source.len(), "row count");
    let differing: Vec<_> = source.iter().zip(&mirror).filter(|(s, m)| s != m).take(3).collect();
    assert!(differing.is_empty(), "mirror = source; first differences (source, mirror): {differing:?}");
}

/// Creates `ddl.t (id BIGINT PRIMARY KEY, <columns>)` with rows `1..=n`
/// (`values`: the other columns' values, an expression of `seq`), starts its
/// chunked copy (chunks of 1000) and returns once its first chunks are
/// committed and the copy is still running.
fn start_slow_copy(
    server: &tributary_testkit::MariaDb,
    dir: &std::path::Path,
    n: u64,
    columns: &str,
    values: &str,
) -> (Pipeline, std::path::PathBuf) {
    server
        .exec(&format!(
            "CREATE DATABASE ddl; CREATE TABLE ddl.t (id BIGINT PRIMARY KEY, {columns}); \
             INSERT INTO ddl.t SELECT seq, {values} FROM ddl.seq_1_to_{n}"
        ))
        .unwrap();
    let config = write_config(dir, server, "ddl.*", "");
    set_source(
        &config,
        "127.0.0.1",
        &["snapshot_parallelism = 2".to_string(), "snapshot_chunk_rows = 1000".to_string()],
    );
    tune_config(&config, n);
    let path = table_path(dir, "ddl", "t");
    let mut pipeline = Pipeline::start(&config);
    let deadline = Instant::now() + std::time::Duration::from_secs(120);
    while !(tributary_delta::table_exists(&path) && delta_version(&path) >= 1) {
        assert!(Instant::now() < deadline, "no chunk committed; log:\n{}", pipeline.log_text());
        pipeline.assert_running();
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    (pipeline, config)
}

#[test]
fn a_column_added_with_a_default_during_the_chunked_copy_ends_equal_to_the_source() {
    let Some(server) = mariadb() else { return };
    let Some(python) = python() else { return };
    let n = 300_000;
    let dir = test_dir();
    let (mut pipeline, _config) =
        start_slow_copy(&server, dir.path(), n, "v INT NOT NULL, w VARCHAR(40)", "0, CONCAT('w', seq)");
    let path = table_path(dir.path(), "ddl", "t");
    // Mid-copy: the chunks still to come are read with the copy's column
    // list; the stream brings the ALTER (after the copy's start) and the
    // updates of rows on both sides of the copy's cursor.
    server
        .exec(
            "ALTER TABLE ddl.t ADD COLUMN x INT NOT NULL DEFAULT 7; \
             UPDATE ddl.t SET x = 8, v = 1 WHERE id % 1000 = 0; DELETE FROM ddl.t WHERE id % 1000 = 1",
        )
        .unwrap();
    assert!(!snapshot_done(&path), "the ALTER came during the copy (make the table larger)");
    wait_long(&mut pipeline, &path, master_version(&server));
    assert_mirror_equals_source(&server, &python, &path, &["id", "v", "w", "x"]);
    assert!(!pipeline.log_text().contains("table stopped"), "{}", pipeline.log_text());
    assert!(pipeline.stop().success());
}

#[test]
fn a_column_dropped_during_the_chunked_copy_stops_the_copy_and_a_restart_ends_equal_to_the_source() {
    let Some(server) = mariadb() else { return };
    let Some(python) = python() else { return };
    let n = 300_000;
    let dir = test_dir();
    let (mut pipeline, config) = start_slow_copy(
        &server,
        dir.path(),
        n,
        "u INT NOT NULL, v INT NOT NULL, w VARCHAR(40)",
        "seq, seq % 7, CONCAT('w', seq)",
    );
    let path = table_path(dir.path(), "ddl", "t");
    // A middle NOT NULL column: the rows copied after the restart must not
    // shift `v` and `w` into its place (they are read by name), and its NULLs
    // in them must be allowed (before 2026-12-05 every restart stopped with
    // "NULL ... in a NOT NULL column").
    server.exec("ALTER TABLE ddl.t DROP COLUMN u; UPDATE ddl.t SET w = 'changed' WHERE id % 1000 = 0").unwrap();
    assert!(!snapshot_done(&path), "the ALTER came during the copy (make the table larger)");
    // The next chunk's SELECT names a column that is gone: the pipeline stops.
    let status = pipeline.wait_exit(std::time::Duration::from_secs(120));
    let log = pipeline.log_text();
    assert!(status.is_some_and(|s| !s.success()), "the copy stops, non-zero ({status:?}); log:\n{log}");
    assert!(log.contains("Unknown column 'u'"), "the error names the cause; log:\n{log}");
    let mut pipeline = Pipeline::start(&config);
    wait_long(&mut pipeline, &path, master_version(&server));
    assert_mirror_equals_source(&server, &python, &path, &["id", "v", "w"]);
    let log = pipeline.log_text();
    assert!(log.contains("nullable from now on") && log.contains("\"u\""), "the restart relaxes `u`; log:\n{log}");
    assert!(pipeline.stop().success());
}

/// A type widened while the pipeline is down after a kill -9 in the middle
/// of the copy: the rows already copied hold the old type and the stream
/// would bring the change only after the copy, so that table's copy starts
/// over from the first row with the table following the new schema
/// (logged), instead of failing on every start ("does not fit").
#[test]
fn a_decimal_widened_while_a_copy_was_killed_makes_the_copy_start_over() {
    let Some(server) = mariadb() else { return };
    let Some(python) = python() else { return };
    let dir = test_dir();
    let (pipeline, config) =
        start_slow_copy(&server, dir.path(), 300_000, "v INT NOT NULL, d DECIMAL(10,2)", "0, seq / 100");
    let path = table_path(dir.path(), "ddl", "t");
    pipeline.kill9();
    assert!(!snapshot_done(&path), "killed during the copy (make the table larger)");
    server
        .exec("ALTER TABLE ddl.t MODIFY d DECIMAL(14,2); UPDATE ddl.t SET d = 123456789012.34 WHERE id % 1000 = 0")
        .unwrap();
    let mut pipeline = Pipeline::start(&config);
    wait_long(&mut pipeline, &path, master_version(&server));
    assert_mirror_equals_source(&server, &python, &path, &["id", "v", "d"]);
    let log = pipeline.log_text();
    assert!(log.contains("the copy starts over from the first row"), "{log}");
    assert!(pipeline.stop().success());
}
