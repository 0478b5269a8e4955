//! PostgreSQL: the initial snapshot (the slot's exported snapshot) hands over
//! to streaming with no gap and no duplicate, and a kill -9 at any moment
//! followed by a restart loses and duplicates nothing.

mod common;

use common::pg::*;
use common::*;
use std::time::Instant;
use tributary_testkit::postgres::PgDatabase;

/// Per-row checksum of the source table, in id order.
fn source_checksums(db: &PgDatabase<'_>) -> Vec<String> {
    pg_lines(db, "SELECT id, md5(concat_ws('|', id, v, w)) FROM big ORDER BY id")
}

/// The first id at which two checksum lists differ, for the failure message.
fn first_difference(source: &[String], mirror: &[String]) -> String {
    let at = source.iter().zip(mirror).position(|(a, b)| a != b).unwrap_or(source.len().min(mirror.len()));
    format!("source {:?} vs mirror {:?}", source.get(at), mirror.get(at))
}

#[test]
fn a_100k_row_snapshot_under_concurrent_writes_ends_equal_to_the_source() {
    let Some(server) = postgres() else { return };
    let Some(python) = python() else { return };
    let db = server.create_database().unwrap();
    sql(
        &db,
        "CREATE TABLE big (id BIGINT PRIMARY KEY, v BIGINT, w VARCHAR(40)); \
         INSERT INTO big SELECT i, i * 7, 'w' || i FROM generate_series(1, 100000) AS i; ANALYZE big",
    );
    let dir = test_dir();
    // Small chunks, so that the snapshot is still running while the writes below commit.
    let config = write_pg_config(dir.path(), &server, &db, "public.big", "snapshot_chunk_rows = 5000");
    let path = table_path(dir.path(), "public", "big");
    let mut pipeline = Pipeline::start(&config);
    // Writes while the snapshot runs (until it is done): updates, deletes and
    // inserts across the key range.
    let started = Instant::now();
    let (mut round, mut during) = (0u64, 0u64);
    let mut lsn = 0;
    loop {
        let log = pipeline.log_text();
        if log.contains("snapshot of table done") && round >= 20 {
            break;
        }
        if log.contains("snapshot started") && !log.contains("snapshot of table done") {
            during += 1;
        }
        assert!(started.elapsed() < CATCH_UP, "the snapshot did not finish; log:\n{log}");
        pipeline.assert_running();
        round += 1;
        lsn = change(
            &db,
            &format!(
                "UPDATE big SET v = v + 1 WHERE id % 1000 = {r}; DELETE FROM big WHERE id = {d}; \
                 INSERT INTO big VALUES ({n}, {r}, 'new'); UPDATE big SET w = NULL WHERE id = {u}",
                r = round % 1000,
                d = round * 997,
                n = 200_000 + round,
                u = 100_000 - round * 13
            ),
        );
    }
    assert!(during >= 3, "only {during} write rounds while the snapshot ran");
    wait_past(&mut pipeline, &path, lsn);
    assert!(pipeline.stop().success());
    let source = source_checksums(&db);
    let mirror = mirror_checksums(&python, &path);
    assert_eq!(source.len(), 100_000, "rounds: {round}");
    assert_eq!(source.len(), mirror.len(), "row count");
    assert!(source == mirror, "per-row checksums differ: {}", first_difference(&source, &mirror));
    eprintln!("{round} write rounds, {during} of them while the snapshot ran");
}

#[test]
fn kill_9_mid_stream_then_restart_loses_and_duplicates_nothing() {
    let Some(server) = postgres() else { return };
    let Some(python) = python() else { return };
    let db = server.create_database().unwrap();
    sql(&db, "CREATE TABLE big (id BIGINT PRIMARY KEY, v BIGINT, w VARCHAR(40))");
    let dir = test_dir();
    let config = write_pg_config(dir.path(), &server, &db, "public.big", "");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("batch_max_wait_ms = 200", "batch_max_wait_ms = 200\nbatch_max_rows = 50");
    std::fs::write(&config, text).unwrap();
    let path = table_path(dir.path(), "public", "big");
    let mut pipeline = Pipeline::start(&config);
    wait_committed(&mut pipeline, &path, 1);
    // A stream of small transactions; kill -9 while they flow, three times.
    let mut next_id = 1u64;
    for _ in 0..3 {
        for _ in 0..40 {
            sql(
                &db,
                &format!(
                    "INSERT INTO big VALUES ({a},{a},'x'),({b},{b},'y'); UPDATE big SET v = v * 2 WHERE id = {c}",
                    a = next_id,
                    b = next_id + 1,
                    c = next_id / 2 + 1
                ),
            );
            next_id += 2;
        }
        pipeline.assert_running();
        pipeline.kill9();
        pipeline = Pipeline::start(&config);
    }
    let lsn = change(&db, "DELETE FROM big WHERE id % 5 = 0");
    wait_past(&mut pipeline, &path, lsn);
    assert!(pipeline.stop().success());
    let source = source_checksums(&db);
    let mirror = mirror_checksums(&python, &path);
    assert_eq!(source.len(), 192);
    assert_eq!(source.len(), mirror.len(), "row count");
    assert!(source == mirror, "per-row checksums differ: {}", first_difference(&source, &mirror));
    // Each change once: 240 inserts, 120 update pairs, one delete per multiple of 5.
    let feed = change_feed(&python, &path, 0);
    let count = |t: &str| feed.iter().filter(|r| r["_change_type"] == t).count();
    assert_eq!(count("insert"), 240);
    assert_eq!(count("update_postimage"), 120);
    assert_eq!(count("update_preimage"), 120);
    assert_eq!(count("delete"), 48);
    let mut inserted = feed_ids(&feed, "insert");
    inserted.sort();
    inserted.dedup();
    assert_eq!(inserted.len(), 240, "no insert twice");
    assert_eq!(slot_count(&db), 1, "one slot across the restarts");
}

#[test]
fn kill_9_during_the_initial_snapshot_then_restart_ends_equal_to_the_source() {
    kill_9_during_the_initial_snapshot("chunked");
}

#[test]
fn kill_9_during_a_one_transaction_snapshot_copies_again_and_ends_equal_to_the_source() {
    kill_9_during_the_initial_snapshot("one_transaction");
}

/// kill -9 while `snapshot_method` copies a 60k-row table, changes while it is
/// down, a restart: a chunked copy continues, a one-transaction copy starts
/// over through a temporary slot; either way the mirror equals the source.
fn kill_9_during_the_initial_snapshot(method: &str) {
    let Some(server) = postgres() else { return };
    let Some(python) = python() else { return };
    let db = server.create_database().unwrap();
    sql(
        &db,
        "CREATE TABLE big (id BIGINT PRIMARY KEY, v BIGINT, w VARCHAR(40)); \
         INSERT INTO big SELECT i, i * 7, 'w' || i FROM generate_series(1, 60000) AS i; ANALYZE big",
    );
    let dir = test_dir();
    let extra = format!("snapshot_chunk_rows = 2000\nsnapshot_method = \"{method}\"");
    let config = write_pg_config(dir.path(), &server, &db, "public.big", &extra);
    // One Delta commit per 2,000 copied rows, so that a kill finds a half-copied table.
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("checkpoint_interval = 5", "checkpoint_interval = 5\ntarget_file_rows = 2000"),
    )
    .unwrap();
    let path = table_path(dir.path(), "public", "big");
    let mut pipeline = Pipeline::start(&config);
    // Kill once some chunks are in Delta but the copy has not finished.
    let started = Instant::now();
    loop {
        let versions = std::fs::read_dir(path.join("_delta_log"))
            .map(|d| d.flatten().filter(|e| e.file_name().to_string_lossy().ends_with(".json")).count())
            .unwrap_or(0);
        if versions >= 4 {
            break;
        }
        assert!(started.elapsed() < CATCH_UP, "no snapshot chunks; log:\n{}", pipeline.log_text());
        pipeline.assert_running();
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let killed_log = pipeline.log_text();
    pipeline.kill9();
    assert!(!killed_log.contains("snapshot of table done"), "the snapshot finished before the kill");
    // Changes while it is down, after the slot's consistent point.
    sql(&db, "UPDATE big SET v = -v WHERE id % 7 = 0; DELETE FROM big WHERE id % 11 = 0; INSERT INTO big VALUES (70000, 1, 'late')");
    let mut pipeline = Pipeline::start(&config);
    let lsn = change(&db, "UPDATE big SET w = 'after restart' WHERE id = 1");
    wait_past(&mut pipeline, &path, lsn);
    let log = pipeline.log_text();
    let temporary_slot = format!("{}_snap_", db.name());
    if method == "chunked" {
        // The copy continues from its last committed chunk on the same slot
        // (docs/snapshots.md): no reset, no temporary slot.
        assert!(log.contains("snapshot continues from its last committed chunk"), "not continued; log:\n{log}");
        assert!(!log.contains("holds rows without a streaming position"), "the half copy was reset; log:\n{log}");
        assert!(!log.contains(&temporary_slot), "a temporary slot was made; log:\n{log}");
    } else {
        assert!(log.contains("holds rows without a streaming position"), "the half copy was not reset; log:\n{log}");
        assert!(log.contains(&temporary_slot), "copied again through a temporary slot's snapshot; log:\n{log}");
    }
    assert!(pipeline.stop().success());
    let source = source_checksums(&db);
    let mirror = mirror_checksums(&python, &path);
    assert_eq!(source.len(), mirror.len(), "row count");
    assert!(source == mirror, "per-row checksums differ: {}", first_difference(&source, &mirror));
    wait_slot_count(&db, 1);
}
