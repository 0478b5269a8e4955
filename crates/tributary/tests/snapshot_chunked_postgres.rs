//! The chunked initial snapshot on PostgreSQL (docs/snapshots.md): a big
//! table copied by two connections in primary-key chunks, each a short
//! statement of its own (no transaction stays open for the copy), while a
//! mixed workload writes to it, killed with -9 at five moments of the copy;
//! each restart continues from the last committed chunk on the same slot,
//! and at the end the mirror equals the source row by row, the change feed
//! after the hand-over is exact and Spark reads the same.
//!
//! `TRIBUTARY_TEST_SNAPSHOT_ROWS` sets the table size (default 2,000,000).

mod common;

use common::chunked_copy::{assert_feed_is, copy_through_kills, delta_version, rows, tune_config, wait_long};
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
