//! Bounded memory for huge transactions, PostgreSQL source: pgoutput sends a
//! transaction once it committed (the server spills it), row by row, and the
//! pipeline applies one with more changes than a batch in parts that stay
//! invisible until the last part commits. A single transaction updating a
//! random-looking 85 % of the keys (then some again) is interrupted by
//! kill -9 while open in parts, then read again from the slot; a second one
//! inserts new keys (its first part holds only inserts), deletes half of
//! the old ones and updates some; a third inserts, TRUNCATEs (the parts
//! written before it included) and inserts again. Checked: peak RSS under
//! the bound, one Delta commit per transaction, mirror = source, the change
//! feed exact (0 lost, 0 duplicated).

mod common;

use common::large_txn::*;
use common::pg::*;
use common::workload::{assert_feed_exact, id_values};
use common::*;
use std::collections::BTreeSet;
use std::time::Instant;

#[test]
fn huge_postgres_transactions_land_whole_within_the_memory_bound_exactly_once_through_kill_9() {
    let Some(python) = python() else { return };
    let Some(server) = postgres() else { return };
    let rows = table_rows(300_000);
    let started = Instant::now();
    let db = server.create_database().unwrap();
    sql(&db, "CREATE TABLE t (id BIGINT PRIMARY KEY, v INT NOT NULL, w TEXT)");
    sql(&db, &format!("INSERT INTO t SELECT i, 0, 'w' || i FROM generate_series(1, {rows}) AS i"));
    let dir = test_dir();
    let config = write_pg_config(dir.path(), &server, &db, "public.*", "");
    let text = std::fs::read_to_string(&config).unwrap();
    let parts = format!("batch_max_wait_ms = 200\ntransaction_part_rows = {}", part_rows());
    std::fs::write(&config, text.replace("batch_max_wait_ms = 200", &parts)).unwrap();
    let path = table_path(dir.path(), "public", "t");
    let mut pipeline = Pipeline::start(&config);
    wait_past(&mut pipeline, &path, lsn_now(&db) - 1);
    let copied_at = delta_version(&python, &path);
    eprintln!("{rows} rows copied in {:.1?}", started.elapsed());

    let applying = Instant::now();
    let before = delta_version(&python, &path);
    let update = change(
        &db,
        "BEGIN; UPDATE t SET v = v + 1, w = 'a' || id WHERE abs(hashint8(id)::bigint) % 20 < 17; \
         UPDATE t SET v = v + 1, w = 'b' || id WHERE id % 1000 = 7; COMMIT",
    );
    wait_log(&mut pipeline, "part of a large transaction written");
    pipeline.kill9();
    assert_eq!(delta_version(&python, &path), before, "nothing of the open transaction was committed");
    let mut pipeline = Pipeline::start(&config);
    wait_past(&mut pipeline, &path, update);
    eprintln!("update: applied in {:.1?} (kill -9 included), peak RSS {} MiB", applying.elapsed(), {
        pipeline.peak_rss_kib() / 1024
    });

    let applying = Instant::now();
    let delete = change(
        &db,
        &format!(
            "BEGIN; INSERT INTO t SELECT i, 0, 'n' || i FROM generate_series({}, {}) AS i; \
             DELETE FROM t WHERE abs(hashint8(id)::bigint) % 20 >= 10 AND id <= {rows}; \
             UPDATE t SET v = v + 1, w = 'c' || id WHERE id % 1000 = 3; COMMIT",
            rows + 1,
            rows + rows / 5
        ),
    );
    wait_past(&mut pipeline, &path, delete);
    let peak = pipeline.peak_rss_kib();
    eprintln!("inserts + delete: applied in {:.1?}, peak RSS {} MiB", applying.elapsed(), peak / 1024);
    assert!(peak <= PEAK_RSS_BOUND_KIB, "peak RSS {} MiB over the bound", peak / 1024);

    let feed = feed_summary(&python, &path, copied_at + 1);
    assert_eq!(feed.versions["update_postimage"].len(), 2, "one commit per transaction");
    assert_eq!(feed.versions["delete"].len(), 1, "one commit");
    let source_md5 = pg_lines(&db, "SELECT id, md5(concat_ws('|', id, v, w)) FROM t ORDER BY id");
    assert_eq!(mirror_checksums_scan(&python, &path), source_md5, "mirror = source");
    let source = id_values(&pg_lines(&db, "SELECT id, v FROM t"));
    let snapshot: BTreeSet<i64> = (1..=rows as i64).collect();
    assert_feed_exact(&feed.rows(&snapshot), &source);

    // Inserts in parts, a TRUNCATE of everything (those parts' files
    // included), new rows: one commit, each change once.
    let remaining = source.len() as u64;
    let (first, last) = (rows * 2, rows * 2 + rows / 5);
    let before = delta_version(&python, &path);
    let truncate = change(
        &db,
        &format!(
            "BEGIN; INSERT INTO t SELECT i, 0, 'x' || i FROM generate_series({first}, {last}) AS i; \
             TRUNCATE t; INSERT INTO t VALUES (1, 0, 'again'), (2, 0, 'again'); COMMIT"
        ),
    );
    wait_past(&mut pipeline, &path, truncate);
    let peak = pipeline.peak_rss_kib();
    let log = pipeline.log_text();
    pipeline.stop();
    assert!(log.contains("committing a source transaction applied in parts"), "split in parts");
    assert!(peak <= PEAK_RSS_BOUND_KIB, "peak RSS {} MiB over the bound", peak / 1024);
    let feed = feed_summary(&python, &path, before + 1);
    assert!(feed.versions.values().all(|v| v.len() == 1), "one commit: {:?}", feed.versions);
    let inserted_then_truncated = last - first + 1;
    let deletes = feed.counts.values().map(|c| c[3]).sum::<u64>();
    assert_eq!(deletes, remaining + inserted_then_truncated, "every row present at the TRUNCATE deleted once");
    assert_eq!(feed.counts.values().map(|c| c[0]).sum::<u64>(), inserted_then_truncated + 2, "inserts once");
    assert!(feed.counts.values().all(|c| c[1] == 0 && c[2] == 0));
    let source_md5 = pg_lines(&db, "SELECT id, md5(concat_ws('|', id, v, w)) FROM t ORDER BY id");
    assert_eq!(mirror_checksums_scan(&python, &path), source_md5, "mirror = source after the TRUNCATE");
    eprintln!("done in {:.1?}, peak RSS {} MiB", started.elapsed(), peak / 1024);
}
