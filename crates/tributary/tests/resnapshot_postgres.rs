//! `tributary resnapshot` on PostgreSQL (docs/snapshots.md, "Re-copying a
//! table"): one big table is copied again while two others keep streaming,
//! all three under a mixed workload, with kill -9 at random moments of the
//! re-copy. The copy starts at a temporary slot's consistent point and reads
//! chunks in short statements; the pipeline's own slot is never confirmed
//! past that start while the copy runs, so the stream can go back to it.
//! The others' lag stays within its bound and their Delta tables keep
//! committing during the copy; each restart continues the copy; at the end
//! every mirror equals its source row by row, no insert of the other tables
//! reached Delta twice, one slot is left, the copied table's change feed is
//! exact after its hand-over, and Spark reads the same.
//!
//! `TRIBUTARY_TEST_RESNAPSHOT_ROWS` sets the big table's size (default 1,000,000).

mod common;

use common::chunked_copy::{assert_feed_is, delta_version};
use common::pg::*;
use common::recopy::{assert_inserts_once, assert_mirror_is, resnapshot, rows, tune_config, wait_calm, watch_recopy};
use common::workload::Workload;
use common::*;
use std::time::Duration;

const BIG: &str = "rs_big";
const OTHERS: [&str; 2] = ["rs_a", "rs_b"];

#[test]
fn a_table_is_copied_again_while_two_others_stream_through_kill_9() {
    let Some(python) = python() else { return };
    let Some(server) = postgres() else { return };
    let n = rows();
    let db = server.create_database().unwrap();
    for (schema, rows) in std::iter::once((BIG, n)).chain(OTHERS.iter().map(|s| (*s, 200))) {
        sql(
            &db,
            &format!("CREATE SCHEMA {schema}; CREATE TABLE {schema}.t (id BIGINT PRIMARY KEY, v INT NOT NULL, w TEXT)"),
        );
        sql(
            &db,
            &format!(
                "INSERT INTO {schema}.t SELECT i, 0, 'w' || i FROM generate_series(1, {rows}) AS i; ANALYZE {schema}.t"
            ),
        );
    }
    let dir = test_dir();
    let config =
        write_pg_config(dir.path(), &server, &db, "rs_*.t", "snapshot_parallelism = 2\nsnapshot_chunk_rows = 5000");
    let address = tune_config(&config, n);
    let big = table_path(dir.path(), BIG, "t");
    let others: Vec<_> = OTHERS.iter().map(|s| table_path(dir.path(), s, "t")).collect();

    let mut pipeline = Pipeline::start(&config);
    let end = lsn_now(&db) + 1;
    for path in std::iter::once(&big).chain(&others) {
        wait_committed(&mut pipeline, path, end);
    }
    let streamed_from: Vec<i64> = others.iter().map(|p| delta_version(p)).collect();

    let (port, database) = (server.port(), db.name().to_string());
    let start = |schema: &'static str, rows: u64| {
        let database = database.clone();
        Workload::start(rows, move |sql| pg_try_exec(port, &database, &format!("SET search_path = {schema}; {sql}")))
    };
    let mut workloads: Vec<Workload> = OTHERS.iter().map(|s| start(s, 200)).collect();
    workloads[0].wait_more(20);
    wait_calm(&address);
    let (ok, answer) = resnapshot(&config, &format!("{BIG}.t"));
    assert!(ok && answer.contains("re-copy of rs_big.t started"), "{answer}");
    eprintln!("{answer}");
    workloads.insert(0, start(BIG, n));
    let mut pipeline = watch_recopy(pipeline, &config, &address, &big, &others);

    workloads[0].wait_more(20);
    let confirmed: Vec<u64> = workloads.into_iter().map(Workload::finish).collect();
    // Everything before `end` is in Delta once the slot is confirmed past it.
    // The tables' own positions need not pass it: on an idle database the
    // heartbeats confirm the slot without Delta commits, so a pipeline that
    // had already caught up when `end` was read never commits beyond it.
    let end = lsn_now(&db) + 1;
    wait_slot_confirmed_within(&db, db.name(), end, Duration::from_secs(600));
    assert!(pipeline.log_text().contains("streaming again from the lowest committed position"), "the stream restarted");
    wait_slot_count(&db, 1);
    for (schema, path) in std::iter::once(&BIG).chain(&OTHERS).zip(std::iter::once(&big).chain(&others)) {
        let source = pg_lines(&db, &format!("SELECT id, md5(concat_ws('|', id, v, w)) FROM {schema}.t ORDER BY id"));
        let mirror = mirror_checksums(&python, path);
        assert_mirror_is(schema, &source, &mirror);
    }
    for (path, from) in others.iter().zip(&streamed_from) {
        assert_inserts_once(&python, path, *from);
    }
    eprintln!("workload transactions (big, a, b): {confirmed:?}; mirrors = sources");

    let handed_over = delta_version(&big);
    let top = n as i64 + 10_000_000;
    let inserted: Vec<i64> = (1..=60).map(|i| top + i).collect();
    sql(&db, &format!("INSERT INTO {BIG}.t SELECT i, 7, 'late' FROM generate_series({}, {}) AS i", top + 1, top + 60));
    let updated: Vec<i64> = inserted[20..40].to_vec();
    for id in &updated {
        sql(&db, &format!("UPDATE {BIG}.t SET v = v + 1000 WHERE id = {id}"));
    }
    let deleted: Vec<i64> = inserted[..20].to_vec();
    let lsn = change(&db, &format!("DELETE FROM {BIG}.t WHERE id BETWEEN {} AND {}", deleted[0], deleted[19]));
    wait_past(&mut pipeline, &big, lsn);
    let feed = change_feed(&python, &big, handed_over + 1);
    assert_feed_is(&feed, &inserted, &updated, &deleted);
    if let Some(spark) = spark("re-copied table") {
        for (schema, path) in std::iter::once(&BIG).chain(&OTHERS).zip(std::iter::once(&big).chain(&others)) {
            let count: u64 = pg_lines(&db, &format!("SELECT count(*) FROM {schema}.t"))[0].parse().unwrap();
            assert_eq!(spark.count(path).unwrap(), count, "Spark reads the mirror of {schema}.t");
        }
        let cdf = spark.cdf_count(&big, handed_over + 1, None).unwrap();
        assert_eq!(cdf, feed.len() as u64, "Spark reads the same change feed after the hand-over");
    }
    assert!(pipeline.stop().success());
}
