//! The initial snapshot hands over to streaming with no gap and no duplicate,
//! and a kill -9 at any moment followed by a restart loses and duplicates nothing.

mod common;

use common::*;
use std::time::{Duration, Instant};

/// Per-row checksum of the source table, in id order.
fn source_checksums(server: &tributary_testkit::MariaDb, db: &str) -> Vec<String> {
    source_lines(server, &format!("SELECT id, MD5(CONCAT_WS('|', id, v, w)) FROM `{db}`.big ORDER BY id"))
}

/// Inserts `n` rows starting at `first` in batches of 5,000.
fn fill(db: &tributary_testkit::TestDatabase<'_>, first: u64, n: u64) {
    let mut next = first;
    while next < first + n {
        let end = (next + 5000).min(first + n);
        let values: Vec<String> = (next..end).map(|i| format!("({i},{},'w{i}')", i * 7)).collect();
        db.exec(&format!("INSERT INTO big VALUES {}", values.join(","))).unwrap();
        next = end;
    }
}

#[test]
fn a_100k_row_snapshot_under_concurrent_writes_ends_equal_to_the_source() {
    let Some(server) = mariadb() else { return };
    let Some(python) = python() else { return };
    let db = server.create_database().unwrap();
    db.exec("CREATE TABLE big (id BIGINT PRIMARY KEY, v BIGINT, w VARCHAR(40))").unwrap();
    fill(&db, 1, 100_000);
    let dir = test_dir();
    let config = write_config(dir.path(), &server, &format!("{}.big", db.name()), "");
    let path = table_path(dir.path(), db.name(), "big");
    let mut pipeline = Pipeline::start(&config);
    // Writes while the snapshot runs: updates, deletes and inserts across the key range.
    let started = Instant::now();
    let mut round = 0u64;
    while started.elapsed() < Duration::from_secs(4) || round < 20 {
        round += 1;
        db.exec(&format!(
            "UPDATE big SET v = v + 1 WHERE id % 1000 = {r}; DELETE FROM big WHERE id = {d}; \
             INSERT INTO big VALUES ({n}, {r}, 'new');",
            r = round % 1000,
            d = round * 997,
            n = 200_000 + round
        ))
        .unwrap();
    }
    wait_committed(&mut pipeline, &path, master_version(&server));
    assert!(pipeline.stop().success());
    let source = source_checksums(&server, db.name());
    let mirror = mirror_checksums(&python, &path);
    assert_eq!(source.len(), mirror.len(), "row count");
    assert!(source == mirror, "per-row checksums differ");
}

#[test]
fn kill_9_mid_stream_then_restart_loses_and_duplicates_nothing() {
    let Some(server) = mariadb() else { return };
    let Some(python) = python() else { return };
    let db = server.create_database().unwrap();
    db.exec("CREATE TABLE big (id BIGINT PRIMARY KEY, v BIGINT, w VARCHAR(40))").unwrap();
    let dir = test_dir();
    let config = write_config(dir.path(), &server, &format!("{}.big", db.name()), "batch_max_rows = 2000");
    let path = table_path(dir.path(), db.name(), "big");
    let mut pipeline = Pipeline::start(&config);
    wait_committed(&mut pipeline, &path, master_version(&server));
    // A stream of small transactions; kill -9 while they flow, three times.
    let mut next_id = 1u64;
    for _ in 0..3 {
        for _ in 0..40 {
            db.exec(&format!(
                "INSERT INTO big VALUES ({a},{a},'x'),({b},{b},'y'); UPDATE big SET v = v * 2 WHERE id = {c}",
                a = next_id,
                b = next_id + 1,
                c = next_id / 2 + 1
            ))
            .unwrap();
            next_id += 2;
        }
        pipeline.assert_running();
        pipeline.kill9();
        pipeline = Pipeline::start(&config);
    }
    db.exec("DELETE FROM big WHERE id % 5 = 0").unwrap();
    wait_committed(&mut pipeline, &path, master_version(&server));
    assert!(pipeline.stop().success());
    let source = source_checksums(&server, db.name());
    let mirror = mirror_checksums(&python, &path);
    assert_eq!(source.len(), mirror.len(), "row count");
    assert!(source == mirror, "per-row checksums differ");
    // Each change once: 240 inserts, 120 update pairs, one delete per multiple of 5.
    let feed = change_feed(&python, &path, 0);
    let count = |t: &str| feed.iter().filter(|r| r["_change_type"] == t).count();
    assert_eq!(count("insert"), 240);
    assert_eq!(count("update_postimage"), 120);
    assert_eq!(count("update_preimage"), 120);
    assert_eq!(count("delete"), 48);
}
