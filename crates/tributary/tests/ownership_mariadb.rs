//! Table ownership with real MariaDB: a second pipeline started against a
//! table the first one writes refuses with one line and touches nothing
//! (the first keeps streaming); two pipelines on different tables of one
//! root run side by side; `tributary adopt` hands the table over (the old
//! owner, still running, stops writing it) and the new owner continues
//! exactly once; a table prefix keeps a second source's
//! tables apart under the same root.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A copy of `config` as pipeline `name` with replica id `server_id`, capturing `include`.
fn pipeline_config(config: &Path, name: &str, server_id: u32, include: &str, extra_sink: &str) -> PathBuf {
    let text = std::fs::read_to_string(config).unwrap();
    let mut out = String::new();
    for line in text.lines() {
        let line = if line.starts_with("name = ") {
            format!("name = \"{name}\"")
        } else if line.starts_with("server_id = ") {
            format!("server_id = {server_id}")
        } else if line.starts_with("include = ") {
            format!("include = [\"{include}\"]")
        } else if line.starts_with("checkpoint_interval") {
            format!("{line}\n{extra_sink}")
        } else {
            line.to_string()
        };
        out.push_str(&line);
        out.push('\n');
    }
    let path = config.with_file_name(format!("{name}.toml"));
    std::fs::write(&path, out).unwrap();
    path
}

/// Every file under the table with its size: any write by anyone changes it.
fn files_with_sizes(table: &Path) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut pending = vec![table.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let rel = path.strip_prefix(table).unwrap().display().to_string();
                out.push((rel, entry.metadata().unwrap().len()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_second_pipeline_refuses_a_table_it_does_not_own_and_adopt_continues_exactly_once() {
    let Some(server) = mariadb() else { return };
    let Some(python) = python() else { return };
    let db = server.create_database().unwrap();
    db.exec(
        "CREATE TABLE t1 (id INT PRIMARY KEY, v INT); CREATE TABLE t2 (id INT PRIMARY KEY, v INT); \
         INSERT INTO t1 VALUES (1, 1), (2, 2); INSERT INTO t2 VALUES (1, 10)",
    )
    .unwrap();
    let dir = test_dir();
    let base = write_config(dir.path(), &server, "unused", "");
    let t1 = format!("{}.t1", db.name());
    let a = pipeline_config(&base, "a", 5101, &t1, "");
    let b = pipeline_config(&base, "b", 5102, &t1, "");
    let c = pipeline_config(&base, "c", 5103, &format!("{}.t2", db.name()), "");
    let (path1, path2) = (table_path(dir.path(), db.name(), "t1"), table_path(dir.path(), db.name(), "t2"));

    let mut first = Pipeline::start(&a);
    wait_committed_as(&mut first, &path1, master_version(&server), "a");
    // Two pipelines on different tables of one root run side by side.
    let mut third = Pipeline::start(&c);
    wait_committed_as(&mut third, &path2, master_version(&server), "c");
    // (A table's position moves with its own transactions; each waits for its own.)
    db.exec("INSERT INTO t1 VALUES (3, 3)").unwrap();
    let t1_at = master_version(&server);
    db.exec("INSERT INTO t2 VALUES (2, 20)").unwrap();
    wait_committed_as(&mut first, &path1, t1_at, "a");
    wait_committed_as(&mut third, &path2, master_version(&server), "c");

    // The second pipeline on the first one's table refuses, naming owner and options.
    let before = files_with_sizes(&path1);
    let rows_before = mirror_lines(&python, &path1, &["id", "v"]);
    let mut second = Pipeline::start(&b);
    let status = second.wait_exit(Duration::from_secs(60)).expect("the second pipeline must stop by itself");
    assert!(!status.success(), "the second pipeline must fail");
    let log = second.log_text();
    let line = log.lines().find(|l| l.contains("belongs to")).unwrap_or_else(|| panic!("no refusal:\n{log}"));
    assert!(
        line.contains("pipeline \"a\"") && line.contains("tributary adopt") && line.contains("table_prefix"),
        "{line}"
    );
    eprintln!("refusal: {line}");
    assert_eq!(files_with_sizes(&path1), before, "the refused pipeline wrote nothing into the table");
    assert_eq!(mirror_lines(&python, &path1, &["id", "v"]), rows_before);

    // The first keeps streaming.
    db.exec("UPDATE t1 SET v = 30 WHERE id = 3; INSERT INTO t1 VALUES (4, 4)").unwrap();
    wait_committed_as(&mut first, &path1, master_version(&server), "a");
    assert!(third.stop().success());

    // Adopt while the old owner still runs: b takes a's position over, and a
    // stops writing the table at its next commit (only that table; it keeps running).
    let out = tributary(&["adopt", &t1, "--config", b.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "adopt failed: {stdout} {}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("continues from"), "{stdout}");
    db.exec("UPDATE t1 SET v = 40 WHERE id = 4; DELETE FROM t1 WHERE id = 1; INSERT INTO t1 VALUES (5, 5)").unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !first.log_text().contains("table stopped") {
        first.assert_running();
        assert!(std::time::Instant::now() < deadline, "a never stopped the adopted table:\n{}", first.log_text());
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(first.log_text().contains("belongs to pipeline \"b\""), "{}", first.log_text());
    first.assert_running();
    assert!(first.stop().success());
    let mut second = Pipeline::start(&b);
    wait_committed_as(&mut second, &path1, master_version(&server), "b");
    db.exec("UPDATE t1 SET v = 50 WHERE id = 5").unwrap();
    wait_committed_as(&mut second, &path1, master_version(&server), "b");
    assert!(second.stop().success());
    let source = source_lines(&server, &format!("SELECT id, v FROM {t1} ORDER BY id"));
    assert_eq!(mirror_lines(&python, &path1, &["id", "v"]), source, "exactly once across the hand-over");
    // Every change since the hand-over is in the feed once: no re-copy happened.
    let feed = change_feed(&python, &path1, 0);
    assert_eq!(feed_ids(&feed, "delete"), [1]);
    let mut inserted = feed_ids(&feed, "insert");
    inserted.sort_unstable();
    assert_eq!(inserted, [1, 2, 3, 4, 5], "each row inserted once (a re-copy would insert them again)");
    let (code, json, stderr) = validate_json(&b, &[]);
    assert_eq!(code, 0, "validate as the new owner: {json:#} {stderr}");

    // The old owner now refuses the table.
    let mut old = Pipeline::start(&a);
    assert!(!old.wait_exit(Duration::from_secs(60)).expect("a must stop by itself").success());
    assert!(old.log_text().contains("belongs to pipeline \"b\""), "{}", old.log_text());
}

#[test]
fn a_table_prefix_keeps_a_second_sources_tables_apart_under_one_root() {
    let Some(server) = mariadb() else { return };
    // Two servers with the same database and table names (shards), server ids 1 and 2.
    let options = tributary_testkit::MariaDbOptions { server_id: 2, ..Default::default() };
    let Some(other) = tributary_testkit::require("MariaDB", tributary_testkit::MariaDb::start_with(options)) else {
        return;
    };
    other.create_user(CDC_USER, CDC_PASSWORD, &["REPLICATION SLAVE, REPLICATION CLIENT, SELECT ON *.*"]).unwrap();
    let Some(python) = python() else { return };
    let db = server.create_database().unwrap();
    let name = db.name().to_string();
    other.exec(&format!("CREATE DATABASE `{name}`")).unwrap();
    db.exec("CREATE TABLE t (id INT PRIMARY KEY, v INT); INSERT INTO t VALUES (1, 1)").unwrap();
    other
        .exec(&format!("CREATE TABLE `{name}`.t (id INT PRIMARY KEY, v INT); INSERT INTO `{name}`.t VALUES (1, 100)"))
        .unwrap();
    let dir = test_dir();
    let base = write_config(dir.path(), &server, &format!("{name}.t"), "");
    let shard_dir = dir.path().join("shard2");
    std::fs::create_dir_all(&shard_dir).unwrap();
    let shard_base = write_config(&shard_dir, &other, &format!("{name}.t"), "");
    // The second shard's config writes into the first's root, under a prefix.
    let text = std::fs::read_to_string(&shard_base).unwrap();
    let root_line = format!("root = \"{}\"", shard_dir.join("lake").display());
    let text = text
        .replace(&root_line, &format!("root = \"{}\"\ntable_prefix = \"shard2\"", dir.path().join("lake").display()));
    std::fs::write(&shard_base, text).unwrap();
    let shard = pipeline_config(&shard_base, "shard2", 5202, &format!("{name}.t"), "");

    let mut first = Pipeline::start(&base);
    let path = table_path(dir.path(), &name, "t");
    wait_committed(&mut first, &path, master_version(&server));
    let mut second = Pipeline::start(&shard);
    let shard_path = dir.path().join("lake/shard2").join(&name).join("t");
    wait_committed_as(&mut second, &shard_path, master_version(&other), "shard2");
    assert!(first.stop().success());
    assert!(second.stop().success());
    assert_eq!(mirror_lines(&python, &path, &["id", "v"]), ["1\t1"]);
    assert_eq!(mirror_lines(&python, &shard_path, &["id", "v"]), ["1\t100"]);

    // Without the prefix, the same pipeline name on the other server is refused: another source.
    let text = std::fs::read_to_string(&shard_base).unwrap().replace("table_prefix = \"shard2\"\n", "");
    std::fs::write(&shard_base, text).unwrap();
    let mut wrong = Pipeline::start(&shard_base);
    assert!(!wrong.wait_exit(Duration::from_secs(60)).expect("must stop by itself").success());
    let log = wrong.log_text();
    assert!(log.contains("belongs to pipeline") && log.contains("source mariadb:"), "{log}");
    assert_eq!(mirror_lines(&python, &path, &["id", "v"]), ["1\t1"], "untouched");
}
