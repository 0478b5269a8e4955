//! Table maintenance while streaming: with 200 ms batches a table gains two
//! files a commit; automatic compaction (checked every second, at 4 small
//! files) keeps its file count bounded, through kill -9 of the pipeline in
//! the middle of the workload; the change feed stays exact (compaction adds
//! no change rows), Spark reads the mirror, the feed, and versions before and
//! after a compaction commit. Then vacuum with retention 0 deletes what the
//! compactions replaced and the table's bytes come close to its live data.
//! `tributary optimize` / `tributary vacuum --dry-run` on demand. A
//! compaction killed between its files and its commit (failpoint) leaves
//! orphans only, which the vacuum removes.

mod common;

use common::workload::{
    assert_mirror_and_feed_exact, create_workload_table, id_values, listen_on_free_port, mariadb_try_exec, metric,
    Workload,
};
use common::*;
use std::path::Path;
use std::time::{Duration, Instant};

const DB: &str = "maint";
const INITIAL_ROWS: u64 = 300;

/// Active data files of the table at its latest version, and their bytes.
fn active_data_files(path: &Path) -> (usize, u64) {
    let mut files = std::collections::BTreeMap::new();
    let mut versions: Vec<std::path::PathBuf> = std::fs::read_dir(path.join("_delta_log"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    versions.sort();
    for file in versions {
        for line in std::fs::read_to_string(file).unwrap().lines() {
            let action: serde_json::Value = serde_json::from_str(line).unwrap();
            if let Some(add) = action.get("add") {
                files.insert(add["path"].as_str().unwrap().to_string(), add["size"].as_u64().unwrap());
            }
            if let Some(remove) = action.get("remove") {
                files.remove(remove["path"].as_str().unwrap());
            }
        }
    }
    (files.len(), files.values().sum())
}

/// Bytes of every file under the table directory except its log. The pipeline may be
/// vacuuming while this walks: a file or folder removed mid-walk counts as 0 bytes.
fn bytes_on_disk(path: &Path) -> u64 {
    fn walk(dir: &Path) -> u64 {
        let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
        entries
            .flatten()
            .map(|e| {
                let p = e.path();
                if p.is_dir() {
                    if p.ends_with("_delta_log") {
                        0
                    } else {
                        walk(&p)
                    }
                } else {
                    e.metadata().map(|m| m.len()).unwrap_or(0)
                }
            })
            .sum()
    }
    walk(path)
}

/// Versions whose commit is a compaction (operation OPTIMIZE).
fn compaction_versions(path: &Path) -> Vec<i64> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(path.join("_delta_log")).unwrap().flatten() {
        let p = entry.path();
        if p.extension().is_some_and(|e| e == "json") && std::fs::read_to_string(&p).unwrap().contains("\"OPTIMIZE\"") {
            out.push(p.file_stem().unwrap().to_str().unwrap().parse().unwrap());
        }
    }
    out.sort();
    out
}

fn with_maintenance(config: &Path, lines: &str) {
    let text = std::fs::read_to_string(config).unwrap();
    std::fs::write(config, format!("{text}\n[maintenance]\n{lines}\n")).unwrap();
}

#[test]
fn compaction_keeps_files_bounded_while_streaming_through_kill_9_and_vacuum_reclaims_the_rest() {
    if !failpoints() {
        return;
    }
    let Some(python) = python() else { return };
    let Some(server) = mariadb() else { return };
    create_workload_table(&server, DB, INITIAL_ROWS);
    let dir = test_dir();
    let config = write_config(dir.path(), &server, &format!("{DB}.*"), "");
    with_maintenance(
        &config,
        "min_small_files = 4\ncheck_interval_secs = 1\nvacuum_interval_secs = 2\nvacuum_retention_hours = 1.0",
    );
    let address = listen_on_free_port(&config);
    let path = table_path(dir.path(), DB, "t");
    // The first compaction dies with its files written and not committed.
    let die = [("TRIBUTARY_FAILPOINT_DIE_IN_COMPACTION", Path::new("1"))];
    let mut dying = Pipeline::start_with_env(&config, &die);
    wait_committed(&mut dying, &path, master_version(&server));
    let port = server.port();
    let workload = Workload::start(INITIAL_ROWS, move |sql| mariadb_try_exec(port, DB, sql));
    let died = dying.wait_exit(Duration::from_secs(90)).expect("the failpoint ends the process");
    assert!(!died.success() && dying.log_text().contains("dying with a compaction's files written"));
    assert!(compaction_versions(&path).is_empty(), "nothing committed by the dead compaction");
    let mut pipeline = Pipeline::start(&config);
    let mut most_files = 0;
    for round in 0..4 {
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            most_files = most_files.max(active_data_files(&path).0);
            std::thread::sleep(Duration::from_millis(250));
        }
        if round < 3 {
            pipeline.kill9();
            pipeline = Pipeline::start(&config);
        }
    }
    let confirmed = workload.finish();
    wait_committed(&mut pipeline, &path, master_version(&server));
    let compactions = compaction_versions(&path);
    let commits = std::fs::read_dir(path.join("_delta_log")).unwrap().count();
    eprintln!(
        "{confirmed} transactions, {commits} log entries, {} compactions, at most {most_files} active data files",
        compactions.len()
    );
    assert!(compactions.len() >= 3, "compaction ran while streaming: {compactions:?}");
    assert!(most_files <= 24, "the file count stays bounded (saw {most_files})");

    assert_mirror_and_feed_exact(&python, &path, &server, DB, "after compactions and kill -9");
    let source = id_values(&source_lines(&server, &format!("SELECT id, v FROM {DB}.t")));
    let source_md5 =
        source_lines(&server, &format!("SELECT id, MD5(CONCAT_WS('|', id, v, w)) FROM {DB}.t ORDER BY id"));
    let page = common::http::get(&address, "/metrics").body;
    assert!(metric(&page, "tributary_compactions_total{table=\"maint.t\"}").is_some_and(|n| n >= 1.0), "{page}");
    assert!(metric(&page, "tributary_delta_table_files{table=\"maint.t\"}").is_some(), "{page}");

    if let Some(spark) = spark("maintenance") {
        assert_eq!(spark.count(&path).unwrap(), source.len() as u64, "Spark reads the mirror");
        let feed = change_feed(&python, &path, 0).len() as u64;
        assert_eq!(spark.cdf_count(&path, 0, None).unwrap(), feed, "Spark reads the same change feed");
        let v = *compactions.last().unwrap();
        assert_eq!(
            spark.count_at(&path, v - 1).unwrap(),
            spark.count_at(&path, v).unwrap(),
            "time travel across a compaction"
        );
    }

    // On demand: optimize combines what is left; a dry-run vacuum lists, deletes nothing (retention 1 h).
    let out = tributary(&["optimize", "--config", config.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("maint.t: "), "{}", String::from_utf8_lossy(&out.stdout));
    let out = tributary(&["vacuum", "--config", config.to_str().unwrap(), "--dry-run"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("would delete 0 files"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = tributary(&["vacuum", "--config", config.to_str().unwrap(), "--retention-hours", "0.5"]);
    assert!(!out.status.success(), "below the table's retention property is refused");
    assert!(String::from_utf8_lossy(&out.stderr).contains("delta.deletedFileRetentionDuration"));

    // Vacuum with retention 0 (recorded as the tables' retention property at the next start).
    assert!(pipeline.stop().success());
    let (_, live_bytes) = active_data_files(&path);
    let before = bytes_on_disk(&path);
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("vacuum_retention_hours = 1.0", "vacuum_retention_hours = 0.0");
    std::fs::write(&config, text).unwrap();
    let mut pipeline = Pipeline::start(&config);
    let start = Instant::now();
    while bytes_on_disk(&path) >= before && start.elapsed() < Duration::from_secs(30) {
        pipeline.assert_running();
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(1));
    let after = bytes_on_disk(&path);
    eprintln!("table bytes: {before} before vacuum, {after} after, live data {live_bytes}");
    assert!(
        after < before && after <= live_bytes * 3,
        "vacuum reclaimed the replaced files ({after} vs live {live_bytes})"
    );
    assert_eq!(mirror_checksums(&python, &path), source_md5, "mirror = source after the vacuum");
    server.exec(&format!("UPDATE {DB}.t SET v = v + 1 WHERE id = 1")).unwrap();
    wait_committed(&mut pipeline, &path, master_version(&server));
    assert!(pipeline.stop().success());
    if let Some(spark) = spark("maintenance") {
        assert_eq!(spark.count(&path).unwrap(), source.len() as u64, "Spark reads the vacuumed table");
    }
}
