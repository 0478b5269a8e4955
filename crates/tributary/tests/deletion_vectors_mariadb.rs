//! Deletion vectors while streaming (`[sink.delta] update_mode =
//! "deletion_vectors"`): a MariaDB table copied into a new table, which gets
//! the `deletionVectors` feature, then a random-key workload (an insert, an
//! update of a random key, every third transaction a delete of one) with
//! automatic compaction on, through repeated kill -9 of the pipeline. Every
//! update and delete marks rows instead of rewriting files; at the end the
//! mirror equals the source row by row as delta-rs' DataFusion scan and
//! DuckDB's delta extension (delta-kernel-rs) read it (both apply deletion
//! vectors), the change feed holds each change exactly once (0
//! lost, 0 duplicated), and Spark counts the source's rows. An existing
//! table is upgraded only on request (`tributary optimize
//! --enable-deletion-vectors --table`), then streams with vectors.

mod common;

use common::workload::{assert_feed_exact, create_workload_table, id_values, mariadb_try_exec, Workload};
use common::*;
use std::path::Path;
use std::time::{Duration, Instant};

const DB: &str = "dvkill";
const INITIAL_ROWS: u64 = 2000;
const KILLS: usize = 20;

/// The log entries of the table, parsed, by version.
fn log_entries(path: &Path) -> Vec<(i64, Vec<serde_json::Value>)> {
    let mut entries: Vec<(i64, Vec<serde_json::Value>)> = std::fs::read_dir(path.join("_delta_log"))
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            let version = name.strip_suffix(".json")?.parse::<i64>().ok()?;
            let text = std::fs::read_to_string(e.path()).ok()?;
            Some((version, text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()))
        })
        .collect();
    entries.sort_by_key(|(v, _)| *v);
    entries
}

#[test]
fn deletion_vectors_stream_random_key_updates_through_kill_9_exactly_once() {
    let Some(python) = python() else { return };
    let Some(server) = mariadb() else { return };
    create_workload_table(&server, DB, INITIAL_ROWS);
    let dir = test_dir();
    let config = write_config(dir.path(), &server, &format!("{DB}.*"), "");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("checkpoint_interval = 5", "checkpoint_interval = 5\nupdate_mode = \"deletion_vectors\"");
    std::fs::write(&config, format!("{text}\n[maintenance]\nmin_small_files = 4\ncheck_interval_secs = 1\n")).unwrap();
    let path = table_path(dir.path(), DB, "t");

    let mut pipeline = Pipeline::start(&config);
    wait_committed(&mut pipeline, &path, master_version(&server));
    let port = server.port();
    let workload = Workload::start(INITIAL_ROWS, move |sql| mariadb_try_exec(port, DB, sql));
    let started = Instant::now();
    for _ in 0..KILLS {
        workload.wait_more(20);
        std::thread::sleep(Duration::from_millis(1500));
        pipeline.kill9();
        pipeline = Pipeline::start(&config);
    }
    workload.wait_more(50);
    let confirmed = workload.finish();
    wait_committed(&mut pipeline, &path, master_version(&server));

    let entries = log_entries(&path);
    let protocol = entries[0].1.iter().find_map(|a| a.get("protocol")).expect("v0 has a protocol");
    assert!(protocol["writerFeatures"].as_array().is_some_and(|f| f.iter().any(|f| f == "deletionVectors")));
    let (mut marking_commits, mut rewrites, mut compactions) = (0, 0, 0);
    for (version, actions) in &entries {
        let op = actions.iter().find_map(|a| a.get("commitInfo")).and_then(|c| c["operation"].as_str()).unwrap_or("");
        let adds: Vec<&serde_json::Value> = actions.iter().filter_map(|a| a.get("add")).collect();
        let removed: Vec<&str> = actions.iter().filter_map(|a| a["remove"]["path"].as_str()).collect();
        if op == "OPTIMIZE" {
            compactions += 1;
            continue;
        }
        if adds.iter().any(|a| a["deletionVector"].is_object()) {
            marking_commits += 1;
        }
        // A streaming commit never drops a data file for good, except by TRUNCATE (none here).
        for p in removed {
            let again = adds.iter().any(|a| a["path"] == p && a["deletionVector"].is_object());
            if !again {
                rewrites += 1;
                eprintln!("v{version} ({op}) removed {p} without re-adding it");
            }
        }
    }
    eprintln!(
        "{confirmed} transactions, {KILLS} kill -9 in {:.1?}, {} log entries, {marking_commits} commits with \
         deletion vectors, {compactions} compactions",
        started.elapsed(),
        entries.len()
    );
    assert_eq!(rewrites, 0, "updates and deletes mark rows, they rewrite no file");
    assert!(marking_commits >= 10, "rows were marked in deletion vectors ({marking_commits} commits)");

    // delta-rs' DataFusion scan applies deletion vectors (its pyarrow dataset
    // refuses them, so the shared md5 helper cannot read these tables).
    assert_exact(&python, &path, &server, DB);
    let source = id_values(&source_lines(&server, &format!("SELECT id, v FROM {DB}.t")));
    if let Some(spark) = spark("deletion vectors") {
        assert_eq!(spark.count(&path).unwrap(), source.len() as u64, "Spark reads the mirror");
        let feed = change_feed(&python, &path, 0).len() as u64;
        assert_eq!(spark.cdf_count(&path, 0, None).unwrap(), feed, "Spark reads the same change feed");
    }
    pipeline.stop();
}

/// The mirror (delta-rs' DataFusion scan) equals `db.t` row by row and the
/// change feed holds each change exactly once.
fn assert_exact(python: &Path, path: &Path, server: &tributary_testkit::MariaDb, db: &str) {
    let source_rows = source_lines(server, &format!("SELECT id, v, w FROM {db}.t ORDER BY id"));
    // delta-rs' DataFusion scan, and DuckDB's delta extension (delta-kernel-rs).
    for reader in ["scan", "duckdb"] {
        let scanned = read(python, &[reader, path.to_str().unwrap()]);
        let mut mirror: Vec<String> = scanned["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| format!("{}\t{}\t{}", r["id"], r["v"], r["w"].as_str().unwrap_or("NULL")))
            .collect();
        mirror.sort_by_key(|l| l.split('\t').next().unwrap().parse::<i64>().unwrap());
        assert_eq!(mirror, source_rows, "{reader} reads the mirror");
    }
    let source = id_values(&source_lines(server, &format!("SELECT id, v FROM {db}.t")));
    assert_feed_exact(&change_feed(python, path, 0), &source);
}

#[test]
fn an_existing_table_gets_deletion_vectors_only_when_asked_then_streams_with_them() {
    let Some(python) = python() else { return };
    let Some(server) = mariadb() else { return };
    const UP: &str = "dvup";
    create_workload_table(&server, UP, 200);
    let dir = test_dir();
    let config = write_config(dir.path(), &server, &format!("{UP}.*"), "");
    let path = table_path(dir.path(), UP, "t");
    let update = |sql: &str| assert!(mariadb_try_exec(server.port(), UP, sql), "{sql}");
    let has_vectors =
        || log_entries(&path).iter().flat_map(|(_, a)| a.iter()).any(|a| a["add"]["deletionVector"].is_object());

    // Copy-on-write first (`update_mode = "rewrite"`, set explicitly: deletion vectors are the default).
    let rewrite = std::fs::read_to_string(&config)
        .unwrap()
        .replace("checkpoint_interval = 5", "checkpoint_interval = 5\nupdate_mode = \"rewrite\"");
    std::fs::write(&config, rewrite).unwrap();
    let mut pipeline = Pipeline::start(&config);
    wait_committed(&mut pipeline, &path, master_version(&server));
    update("UPDATE t SET v = v + 1, w = 'a' WHERE id IN (1, 2, 3)");
    wait_committed(&mut pipeline, &path, master_version(&server));
    pipeline.stop();

    // Asked for in the config: the existing table is not upgraded, one warning says how.
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("update_mode = \"rewrite\"", "update_mode = \"deletion_vectors\"");
    std::fs::write(&config, text).unwrap();
    let mut pipeline = Pipeline::start(&config);
    update("UPDATE t SET v = v + 1, w = 'b' WHERE id = 4");
    wait_committed(&mut pipeline, &path, master_version(&server));
    let log = pipeline.log_text();
    pipeline.stop();
    assert!(log.contains("optimize --enable-deletion-vectors"), "the warning names the command");
    assert!(!has_vectors(), "no silent upgrade");
    let entries = log_entries(&path);
    assert!(entries.iter().all(|(_, a)| a.iter().all(|x| x["protocol"]["writerFeatures"].is_null())));

    // The upgrade, on request, per table.
    let config_arg = config.to_str().unwrap();
    let out = tributary(&["optimize", "--config", config_arg, "--enable-deletion-vectors"]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("--table"));
    let out = tributary(&["optimize", "--config", config_arg, "--enable-deletion-vectors", "--table", "dvup.t"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && stdout.contains("deletion vectors enabled"), "{stdout}");

    // From the next start on, updates and deletes mark rows.
    let mut pipeline = Pipeline::start(&config);
    update("UPDATE t SET v = v + 1, w = 'c' WHERE id IN (5, 6, 150); DELETE FROM t WHERE id IN (7, 151)");
    update("UPDATE t SET v = v + 1, w = 'd' WHERE id IN (1, 5)");
    wait_committed(&mut pipeline, &path, master_version(&server));
    pipeline.stop();
    assert!(has_vectors(), "rows marked after the upgrade");
    assert_exact(&python, &path, &server, UP);
}
