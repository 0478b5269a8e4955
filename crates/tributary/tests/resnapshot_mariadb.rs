//! `tributary resnapshot` on MariaDB (docs/snapshots.md, "Re-copying a
//! table"): one big table is copied again while two others keep streaming,
//! all three under a mixed workload, with kill -9 at random moments of the
//! re-copy. The others' lag stays within its bound and their Delta tables
//! keep committing during the copy; each restart continues the copy from
//! its last committed chunk; at the end every mirror equals its source row
//! by row, no insert of the other tables reached Delta twice (the stream is
//! replayed from the copy's start), the change feed of the copied table is
//! exact after its hand-over, and Spark reads the same.
//!
//! `TRIBUTARY_TEST_RESNAPSHOT_ROWS` sets the big table's size (default 1,000,000).

mod common;

use common::chunked_copy::{assert_feed_is, delta_version, wait_long};
use common::recopy::{assert_inserts_once, assert_mirror_is, resnapshot, rows, tune_config, wait_calm, watch_recopy};
use common::workload::{create_workload_table, mariadb_try_exec, Workload};
use common::*;

const BIG: &str = "rs_big";
const OTHERS: [&str; 2] = ["rs_a", "rs_b"];

/// `db.t (id, v, w)` with rows `1..=n` (`v = 0`), inserted 20,000 at a time.
fn create_big_table(server: &tributary_testkit::MariaDb, db: &str, n: u64) {
    server
        .exec(&format!(
            "CREATE DATABASE {db}; CREATE TABLE {db}.t (id BIGINT PRIMARY KEY, v INT NOT NULL, w VARCHAR(40))"
        ))
        .unwrap();
    let mut next = 1;
    while next <= n {
        let end = (next + 20_000).min(n + 1);
        server
            .exec(&format!("INSERT INTO {db}.t SELECT seq, 0, CONCAT('w', seq) FROM {db}.seq_{next}_to_{}", end - 1))
            .unwrap();
        next = end;
    }
}

#[test]
fn a_table_is_copied_again_while_two_others_stream_through_kill_9() {
    let Some(server) = mariadb() else { return };
    let Some(python) = python() else { return };
    let n = rows();
    create_big_table(&server, BIG, n);
    for db in OTHERS {
        create_workload_table(&server, db, 200);
    }
    let dir = test_dir();
    let config = write_config(dir.path(), &server, "rs_*.*", "");
    let address = tune_config(&config, n);
    set_source(
        &config,
        "127.0.0.1",
        &["snapshot_parallelism = 2".to_string(), "snapshot_chunk_rows = 5000".to_string()],
    );
    let big = table_path(dir.path(), BIG, "t");
    let others: Vec<_> = OTHERS.iter().map(|db| table_path(dir.path(), db, "t")).collect();

    let mut pipeline = Pipeline::start(&config);
    let end = master_version(&server);
    for path in std::iter::once(&big).chain(&others) {
        wait_committed(&mut pipeline, path, end);
    }
    let streamed_from: Vec<i64> = others.iter().map(|p| delta_version(p)).collect();

    // A table this pipeline does not stream is refused in one line.
    let (ok, answer) = resnapshot(&config, "rs_big.nope");
    assert!(!ok && answer.contains("not a table this pipeline streams"), "{answer}");

    // The others stream under a workload; once the pipeline keeps up with
    // it, the big table is copied again while a workload writes to it too.
    let port = server.port();
    let start = |db: &'static str, rows: u64| Workload::start(rows, move |sql| mariadb_try_exec(port, db, sql));
    let mut workloads: Vec<Workload> = OTHERS.iter().map(|db| start(db, 200)).collect();
    workloads[0].wait_more(20);
    wait_calm(&address);
    let (ok, answer) = resnapshot(&config, &format!("{BIG}.t"));
    assert!(ok && answer.contains("re-copy of rs_big.t started"), "{answer}");
    eprintln!("{answer}");
    workloads.insert(0, start(BIG, n));
    let (ok, busy) = resnapshot(&config, "rs_a.t");
    assert!(!ok && busy.contains("under way"), "a second re-copy waits for the first: {busy}");
    let mut pipeline = watch_recopy(pipeline, &config, &address, &big, &others);

    // Let the workloads run a little after the hand-over, then stop them and catch up.
    workloads[0].wait_more(20);
    let confirmed: Vec<u64> = workloads.into_iter().map(Workload::finish).collect();
    let end = master_version(&server);
    for path in std::iter::once(&big).chain(&others) {
        wait_long(&mut pipeline, path, end);
    }
    let log = pipeline.log_text();
    assert!(log.contains("re-copy done"), "the copy ended in the log");
    assert!(log.contains("streaming again from the lowest committed position"), "the stream restarted");
    for (db, path) in std::iter::once(&BIG).chain(&OTHERS).zip(std::iter::once(&big).chain(&others)) {
        let source =
            source_lines(&server, &format!("SELECT id, MD5(CONCAT_WS('|', id, v, w)) FROM {db}.t ORDER BY id"));
        let mirror = mirror_checksums(&python, path);
        assert_mirror_is(db, &source, &mirror);
    }
    for (path, from) in others.iter().zip(&streamed_from) {
        assert_inserts_once(&python, path, *from);
    }
    eprintln!("workload transactions (big, a, b): {confirmed:?}; mirrors = sources");

    // After the hand-over the copied table's change feed is exact.
    let handed_over = delta_version(&big);
    let top = n as i64 + 10_000_000;
    let inserted: Vec<i64> = (1..=60).map(|i| top + i).collect();
    let values: Vec<String> = inserted.iter().map(|i| format!("({i}, 7, 'late')")).collect();
    server.exec(&format!("INSERT INTO {BIG}.t VALUES {}", values.join(","))).unwrap();
    let updated: Vec<i64> = inserted[20..40].to_vec();
    for id in &updated {
        server.exec(&format!("UPDATE {BIG}.t SET v = v + 1000 WHERE id = {id}")).unwrap();
    }
    let deleted: Vec<i64> = inserted[..20].to_vec();
    server.exec(&format!("DELETE FROM {BIG}.t WHERE id BETWEEN {} AND {}", deleted[0], deleted[19])).unwrap();
    wait_committed(&mut pipeline, &big, master_version(&server));
    let feed = change_feed(&python, &big, handed_over + 1);
    assert_feed_is(&feed, &inserted, &updated, &deleted);

    if let Some(spark) = spark("re-copied table") {
        for (db, path) in std::iter::once(&BIG).chain(&OTHERS).zip(std::iter::once(&big).chain(&others)) {
            let count = source_lines(&server, &format!("SELECT COUNT(*) FROM {db}.t"))[0].parse::<u64>().unwrap();
            assert_eq!(spark.count(path).unwrap(), count, "Spark reads the mirror of {db}.t");
        }
        let cdf = spark.cdf_count(&big, handed_over + 1, None).unwrap();
        assert_eq!(cdf, feed.len() as u64, "Spark reads the same change feed after the hand-over");
    }
    assert!(pipeline.stop().success());
}
