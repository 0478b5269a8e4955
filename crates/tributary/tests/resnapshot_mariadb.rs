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
//! `TRIBUTARY_TEST_RESNAPSHOT_ROWS` sets the big table's size (default 300,000).

mod common;

use common::chunked_copy::{assert_feed_is, delta_version};
use common::http::{scrape, value};
use common::workload::{create_workload_table, mariadb_try_exec, Workload};
use common::*;
use std::path::Path;
use std::time::{Duration, Instant};

const BIG: &str = "rs_big";
const OTHERS: [&str; 2] = ["rs_a", "rs_b"];
const KILLS: usize = 3;
/// The kills start after this many commits of the copy (the lag is watched before).
const KILL_FROM_COMMIT: usize = 4;
/// The other tables' lag while the big one is copied again, at most.
const LAG_BOUND_SECS: f64 = 10.0;

fn rows() -> u64 {
    std::env::var("TRIBUTARY_TEST_RESNAPSHOT_ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(300_000)
}

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

/// The table's status as the pipeline's app id sees it.
fn status(path: &Path) -> tributary_delta::TableStatus {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(tributary_delta::table_status(path, APP)).unwrap()
}

/// True while the table's re-copy has started and not ended.
fn copying(path: &Path) -> bool {
    !status(path).snapshot_complete
}

/// Commit files in the table's `_delta_log`.
fn log_commits(path: &Path) -> usize {
    std::fs::read_dir(path.join("_delta_log"))
        .map(|d| d.filter(|e| e.as_ref().is_ok_and(|e| e.path().extension().is_some_and(|x| x == "json"))).count())
        .unwrap_or(0)
}

/// `tributary resnapshot <table>`: exit status and its output.
fn resnapshot(config: &Path, table: &str) -> (bool, String) {
    let out = tributary(&["resnapshot", table, "--config", config.to_str().unwrap()]);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text.trim().to_string())
}

/// The pipeline's lag gauge, when it answers.
fn lag(address: &str) -> Option<f64> {
    let scraped = std::panic::catch_unwind(|| scrape(address)).ok()?;
    value(&scraped, "tributary_source_lag_seconds", &[])
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
    let port = tributary_testkit::ports::free_loopback_port().unwrap();
    let address = format!("127.0.0.1:{port}");
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text
        .replace("listen = \"127.0.0.1:0\"", &format!("listen = \"{address}\""))
        .replace(
            "checkpoint_interval = 5",
            &format!("checkpoint_interval = 5\ntarget_file_rows = {}", (n / 10).max(10_000)),
        )
        .replace("batch_max_wait_ms = 200", "batch_max_wait_ms = 1000\nidle_commit_secs = 2");
    std::fs::write(&config, text).unwrap();
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
    let port_db = server.port();
    let start = |db: &'static str, rows: u64| Workload::start(rows, move |sql| mariadb_try_exec(port_db, db, sql));
    let mut workloads: Vec<Workload> = OTHERS.iter().map(|db| start(db, 200)).collect();
    workloads[0].wait_more(20);
    let calm = Instant::now() + Duration::from_secs(60);
    while lag(&address).is_none_or(|l| l > 2.0) {
        assert!(Instant::now() < calm, "the pipeline does not keep up with the workload before the re-copy");
        std::thread::sleep(Duration::from_millis(200));
    }

    let requested = Instant::now();
    let (ok, answer) = resnapshot(&config, &format!("{BIG}.t"));
    assert!(ok && answer.contains("re-copy of rs_big.t started"), "{answer}");
    eprintln!("{answer}");
    workloads.insert(0, start(BIG, n));
    let (ok, busy) = resnapshot(&config, "rs_a.t");
    assert!(!ok && busy.contains("under way"), "a second re-copy waits for the first: {busy}");

    // While the copy runs: first the others' lag is watched, then kill -9
    // at random moments.
    let versions_before: Vec<i64> = others.iter().map(|p| delta_version(p)).collect();
    let (mut max_lag, mut lag_samples) = (0f64, 0);
    let mut seed = u64::from(std::process::id()) | 1;
    let (mut kills, mut resumed) = (0, 0);
    let deadline = Instant::now() + Duration::from_secs(900);
    let first_commits = log_commits(&big);
    let mut commits = first_commits;
    while copying(&big) {
        assert!(Instant::now() < deadline, "the re-copy did not finish; log:\n{}", pipeline.log_text());
        pipeline.assert_running();
        // The lag is watched while nothing is killed: the first commits of the copy.
        if kills == 0 {
            if let Some(l) = lag(&address) {
                max_lag = max_lag.max(l);
                lag_samples += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
        // Then a kill at a random moment after each of the next commits.
        let now = log_commits(&big);
        if kills == KILLS || now <= commits || now < first_commits + KILL_FROM_COMMIT {
            continue;
        }
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(seed % 800));
        if !copying(&big) {
            break;
        }
        if kills == 0 {
            for (path, before) in others.iter().zip(&versions_before) {
                let now = delta_version(path);
                assert!(now >= before + 3, "{} kept committing during the re-copy ({before} -> {now})", path.display());
            }
        }
        pipeline.kill9();
        kills += 1;
        pipeline = Pipeline::start(&config);
        let wait = Instant::now() + Duration::from_secs(60);
        loop {
            let log = pipeline.log_text();
            if let Some(line) = log.lines().find(|l| l.contains("snapshot continues from its last committed chunk")) {
                eprintln!("restart {kills}: {line}");
                resumed += 1;
                break;
            }
            assert!(Instant::now() < wait, "the restart did not continue the re-copy; log:\n{log}");
            pipeline.assert_running();
            std::thread::sleep(Duration::from_millis(50));
        }
        commits = log_commits(&big);
    }
    let copy_secs = requested.elapsed().as_secs_f64();
    eprintln!("re-copy done in {copy_secs:.1} s; {kills} kill -9, {resumed} resumed; others' lag at most {max_lag:.1} s over {lag_samples} samples before the kills");
    assert!(kills == KILLS && resumed == kills, "kills during the re-copy: {kills}, resumed {resumed}");
    assert!(lag_samples >= 5, "lag samples during the copy: {lag_samples}");
    assert!(max_lag <= LAG_BOUND_SECS, "the other tables' lag during the re-copy: {max_lag:.1} s");

    // Let the workloads run a little after the hand-over, then stop them and catch up.
    workloads[0].wait_more(20);
    let confirmed: Vec<u64> = workloads.into_iter().map(Workload::finish).collect();
    let end = master_version(&server);
    for path in std::iter::once(&big).chain(&others) {
        common::chunked_copy::wait_long(&mut pipeline, path, end);
    }
    let log = pipeline.log_text();
    assert!(log.contains("re-copy done"), "the copy ended in the log");
    assert!(log.contains("streaming again from the lowest committed position"), "the stream restarted");

    for (db, path) in std::iter::once(&BIG).chain(&OTHERS).zip(std::iter::once(&big).chain(&others)) {
        let source =
            source_lines(&server, &format!("SELECT id, MD5(CONCAT_WS('|', id, v, w)) FROM {db}.t ORDER BY id"));
        let mirror = mirror_checksums(&python, path);
        assert_eq!(mirror.len(), source.len(), "{db}: row count (a duplicated or lost key)");
        assert!(mirror == source, "{db}: mirror = source, row by row");
    }
    // The stream restarted from the copy's start: the others skipped what they held.
    for (path, from) in others.iter().zip(&streamed_from) {
        let feed = change_feed(&python, path, from + 1);
        let mut inserts = feed_ids(&feed, "insert");
        let count = inserts.len();
        inserts.sort_unstable();
        inserts.dedup();
        assert_eq!(inserts.len(), count, "{}: an insert reached Delta twice", path.display());
        assert!(count > 10, "{}: the workload's inserts are in the feed ({count})", path.display());
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
