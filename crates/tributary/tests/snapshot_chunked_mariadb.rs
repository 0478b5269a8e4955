//! The chunked initial snapshot on MariaDB (docs/snapshots.md): a big table
//! copied by two connections in primary-key chunks while a mixed workload
//! writes to it, killed with -9 at five moments of the copy; each restart
//! continues from the last committed chunk, and at the end the mirror equals
//! the source row by row, no key is held twice, the change feed after the
//! hand-over is exact and Spark reads the same. The source user has neither
//! RELOAD nor LOCK TABLES: no lock is taken.
//!
//! `TRIBUTARY_TEST_SNAPSHOT_ROWS` sets the table size (default 2,000,000).

mod common;

use common::workload::{mariadb_try_exec, Workload};
use common::*;
use std::time::{Duration, Instant};

const DB: &str = "chunks";
const KILLS: usize = 5;

fn rows() -> u64 {
    std::env::var("TRIBUTARY_TEST_SNAPSHOT_ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(2_000_000)
}

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

fn snapshot_done(path: &std::path::Path) -> bool {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    tributary_delta::table_exists(path)
        && rt.block_on(tributary_delta::table_status(path, APP)).is_ok_and(|s| s.committed_version.is_some())
}

/// A log line without its colour escapes.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            chars.by_ref().find(|&c| c == 'm');
        } else {
            out.push(c);
        }
    }
    out
}

/// [`wait_committed`] with room for the catch-up of a big copy-on-write table.
fn wait_long(pipeline: &mut Pipeline, path: &std::path::Path, version: i64) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        pipeline.assert_running();
        let status = rt.block_on(tributary_delta::table_status(path, APP));
        if status.is_ok_and(|s| s.committed_version.is_some_and(|v| v >= version)) {
            return;
        }
        assert!(Instant::now() < deadline, "no catch-up to {version} in 10 min; log:\n{}", pipeline.log_text());
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn log_commits(path: &std::path::Path) -> usize {
    std::fs::read_dir(path.join("_delta_log"))
        .map(|d| d.filter(|e| e.as_ref().is_ok_and(|e| e.path().extension().is_some_and(|x| x == "json"))).count())
        .unwrap_or(0)
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
    let text = std::fs::read_to_string(&config).unwrap();
    let files = (n / 10).clamp(20_000, 200_000);
    let text = text.replace("checkpoint_interval = 5", &format!("checkpoint_interval = 5\ntarget_file_rows = {files}"));
    // Random-key updates rewrite most files of a copy-on-write table: big
    // batches keep the catch-up short in a debug build.
    let text = text.replace("batch_max_wait_ms = 200", "batch_max_wait_ms = 5000");
    std::fs::write(&config, text).unwrap();
    let path = table_path(dir.path(), DB, "t");

    let port = server.port();
    let workload = Workload::start(n, move |sql| mariadb_try_exec(port, DB, sql));
    let mut pipeline = Pipeline::start(&config);
    let copy_started = Instant::now();
    let (mut kills_mid_copy, mut resumed) = (0, 0);
    let mut seed = u64::from(std::process::id()) | 1;
    for kill in 0..KILLS {
        // Wait for one more committed chunk file (progress), then a random moment.
        let commits = log_commits(&path);
        let deadline = Instant::now() + Duration::from_secs(120);
        while log_commits(&path) <= commits && !snapshot_done(&path) && Instant::now() < deadline {
            pipeline.assert_running();
            std::thread::sleep(Duration::from_millis(50));
        }
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(seed % 800));
        if !snapshot_done(&path) {
            kills_mid_copy += 1;
            let out = tributary(&["status", "--config", config.to_str().unwrap()]);
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            if !snapshot_done(&path) {
                assert!(text.contains("snapshot: copy in progress"), "status mid-copy:\n{text}");
            }
        }
        pipeline.kill9();
        pipeline = Pipeline::start(&config);
        // The restart tells whether it continued the copy, and from how far.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let log = pipeline.log_text();
            if let Some(line) = log.lines().find(|l| l.contains("snapshot continues from its last committed chunk")) {
                let line = strip_ansi(line);
                eprintln!("restart {kill}: {line}");
                let copied = line.split("rows_already_copied=").nth(1).and_then(|r| r.split(' ').next());
                let copied: u64 = copied.and_then(|c| c.parse().ok()).unwrap_or_else(|| panic!("{line}"));
                assert!(copied > 0 && copied < n + 100_000, "rows already copied: {line}");
                resumed += 1;
                break;
            }
            if log.contains("chunked snapshot started") || snapshot_done(&path) || Instant::now() > deadline {
                eprintln!("restart {kill}: the copy did not continue (done, or nothing committed yet)");
                break;
            }
            pipeline.assert_running();
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    eprintln!("{KILLS} kill -9 ({kills_mid_copy} during the copy, {resumed} resumed the copy)");
    assert!(kills_mid_copy >= 3, "at least 3 kills hit the copy ({kills_mid_copy})");
    assert!(resumed >= 3, "at least 3 restarts continued the copy instead of starting over ({resumed})");

    let deadline = Instant::now() + Duration::from_secs(600);
    while !snapshot_done(&path) {
        assert!(Instant::now() < deadline, "the copy did not finish; log:\n{}", pipeline.log_text());
        pipeline.assert_running();
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("copy done {:.1?} after the first start", copy_started.elapsed());
    let confirmed = workload.finish();
    wait_long(&mut pipeline, &path, master_version(&server));
    let source = source_lines(&server, &format!("SELECT id, MD5(CONCAT_WS('|', id, v, w)) FROM {DB}.t ORDER BY id"));
    let mirror = mirror_checksums(&python, &path);
    assert_eq!(mirror.len(), source.len(), "row count (a duplicated or lost key)");
    assert!(mirror == source, "mirror = source, row by row");
    eprintln!("{confirmed} workload transactions; mirror = source ({} rows)", source.len());

    // After the hand-over the change feed is exact: 100 inserts, 50 updates, 30 deletes.
    let handed_over = {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(tributary_delta::table_status(&path, APP)).unwrap().version
    };
    let top = n + 10_000_000;
    let inserted: Vec<u64> = (1..=100).map(|i| top + i).collect();
    let values: Vec<String> = inserted.iter().map(|i| format!("({i}, 7, 'late')")).collect();
    server.exec(&format!("INSERT INTO {DB}.t VALUES {}", values.join(","))).unwrap();
    let updated: Vec<u64> = inserted[30..80].to_vec();
    for id in &updated {
        server.exec(&format!("UPDATE {DB}.t SET v = v + 1000 WHERE id = {id}")).unwrap();
    }
    let deleted: Vec<u64> = inserted[..30].to_vec();
    server.exec(&format!("DELETE FROM {DB}.t WHERE id BETWEEN {} AND {}", deleted[0], deleted[29])).unwrap();
    wait_committed(&mut pipeline, &path, master_version(&server));
    let feed = change_feed(&python, &path, handed_over + 1);
    let ids = |t: &str| {
        let mut ids: Vec<i64> = feed_ids(&feed, t);
        ids.sort_unstable();
        ids
    };
    let sorted = |v: &[u64]| {
        let mut v: Vec<i64> = v.iter().map(|&i| i as i64).collect();
        v.sort_unstable();
        v
    };
    assert_eq!(ids("insert"), sorted(&inserted));
    assert_eq!(ids("update_postimage"), sorted(&updated));
    assert_eq!(ids("delete"), sorted(&deleted));
    if let Some(spark) = spark("chunked snapshot") {
        let count = source_lines(&server, &format!("SELECT COUNT(*) FROM {DB}.t"))[0].parse::<u64>().unwrap();
        assert_eq!(spark.count(&path).unwrap(), count, "Spark reads the mirror");
        let cdf = spark.cdf_count(&path, handed_over + 1, None).unwrap();
        assert_eq!(cdf, feed.len() as u64, "Spark reads the same change feed after the hand-over");
    }
    assert!(pipeline.stop().success());
}
