//! `tributary validate` against a real MariaDB and the mirror the pipeline wrote:
//! an untouched mirror passes, one changed behind the pipeline's back fails with
//! the differing keys, an unreachable source cannot be validated (exit 2), the
//! source is read without any lock or binlog position by a user with SELECT
//! only, and a table without primary key is reported as not compared.

mod common;

use common::*;
use std::process::Command;

const TABLE_DDL: &str = "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(50), price DECIMAL(10,2), \
                         kind ENUM('a','b'), at DATETIME(6), qty BIGINT)";

fn populate(db: &tributary_testkit::TestDatabase<'_>) {
    db.exec(TABLE_DDL).unwrap();
    let rows: Vec<String> = (1..=50)
        .map(|i| {
            format!("({i}, 'item {i}', {i}.25, '{}', '2026-01-02 03:04:05.{i:06}', {})", ["a", "b"][i % 2], i * 1000)
        })
        .collect();
    db.exec(&format!("INSERT INTO items VALUES {}", rows.join(","))).unwrap();
}

fn keys(table: &serde_json::Value, kind: &str) -> Vec<i64> {
    table[kind]["keys"].as_array().unwrap().iter().map(|k| k["id"].as_i64().unwrap()).collect()
}

#[test]
fn untouched_mirror_passes_and_a_mirror_changed_behind_the_pipelines_back_fails_with_its_keys() {
    let Some(server) = mariadb() else { return };
    let Some(python) = python() else { return };
    let db = server.create_database().unwrap();
    populate(&db);
    let dir = test_dir();
    let (config, path, mut pipeline) =
        start_copied(dir.path(), &server, &format!("{}.*", db.name()), db.name(), "items");
    db.exec("UPDATE items SET qty = qty + 1 WHERE id <= 10").unwrap();
    db.exec("DELETE FROM items WHERE id = 50").unwrap();
    wait_committed(&mut pipeline, &path, master_version(&server));
    assert!(pipeline.stop().success());

    let (code, json, stderr) = validate_json(&config, &["--max-lag-secs", "3600"]);
    assert_eq!(code, 0, "untouched mirror must pass: {json:#} {stderr}");
    let table = &json["tables"][0];
    assert_eq!(table["status"], "passed");
    assert_eq!(table["source_rows"], 49);
    assert_eq!(table["delta_rows"], 49);
    assert!(table["chunks"].as_u64().unwrap() >= 7, "read in chunks: {table}");

    // Human output of a passing run.
    let out = tributary(&["validate", "--config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("validation passed"));

    // Change the mirror behind the pipeline's back: one row altered, one deleted.
    let script = format!(
        "from deltalake import DeltaTable\n\
         t = DeltaTable('{p}')\n\
         t.update(predicate='id = 7', updates={{'name': \"'tampered'\"}})\n\
         t.delete('id = 3')\n",
        p = path.display()
    );
    let py = Command::new(&python).args(["-c", &script]).output().unwrap();
    assert!(py.status.success(), "python: {}", String::from_utf8_lossy(&py.stderr));
    // And the source gains a row the mirror never saw (pipeline stopped).
    db.exec("INSERT INTO items VALUES (99, 'new', 1.00, 'a', '2026-01-01 00:00:00', 1)").unwrap();

    let (code, json, stderr) = validate_json(&config, &[]);
    assert_eq!(code, 1, "changed mirror must fail: {json:#} {stderr}");
    assert_eq!(json["passed"], false);
    let table = &json["tables"][0];
    assert_eq!(table["status"], "failed");
    assert_eq!(keys(table, "different"), vec![7]);
    let mut missing = keys(table, "missing_in_delta");
    missing.sort();
    assert_eq!(missing, vec![3, 99]);
    assert!(keys(table, "extra_in_delta").is_empty());

    // A row only in Delta: delete it on the source.
    db.exec("DELETE FROM items WHERE id = 20").unwrap();
    let (code, json, _) = validate_json(&config, &["--table", &format!("{}.items", db.name())]);
    assert_eq!(code, 1);
    assert_eq!(keys(&json["tables"][0], "extra_in_delta"), vec![20]);

    // The human table names the keys too.
    let out = tributary(&["validate", "--config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("different values: [7]"), "{text}");
    assert!(text.contains("validation FAILED"), "{text}");
}

#[test]
fn lag_over_the_threshold_fails() {
    let Some(server) = mariadb() else { return };
    let db = server.create_database().unwrap();
    populate(&db);
    let dir = test_dir();
    let (config, _path, pipeline) = start_copied(dir.path(), &server, &format!("{}.*", db.name()), db.name(), "items");
    assert!(pipeline.stop().success());
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let (code, json, _) = validate_json(&config, &["--max-lag-secs", "1"]);
    assert_eq!(code, 1, "{json:#}");
    let problems = json["tables"][0]["problems"].to_string();
    assert!(problems.contains("exceeds --max-lag-secs 1"), "{problems}");
}

#[test]
fn unreachable_source_cannot_be_validated_exit_2() {
    let Some(server) = mariadb() else { return };
    let dir = test_dir();
    let config = write_config(dir.path(), &server, "nope.*", "");
    let text = std::fs::read_to_string(&config).unwrap();
    let free = tributary_testkit::ports::free_loopback_port().unwrap();
    std::fs::write(&config, text.replace(&format!("port = {}", server.port()), &format!("port = {free}"))).unwrap();
    let out = tributary(&["validate", "--config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    assert!(lines[0].starts_with("error: cannot validate:"), "{stderr}");
    assert!(lines[0].contains(&free.to_string()), "names the address: {stderr}");

    // A bad config is exit 2 too.
    std::fs::write(&config, "[pipeline]\nname = \"x\"\n").unwrap();
    let out = tributary(&["validate", "--config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
}

/// Validate opens its read with `START TRANSACTION WITH CONSISTENT SNAPSHOT,
/// READ ONLY` alone: the server's general log of the validating session holds
/// no `FLUSH TABLES WITH READ LOCK`, no `LOCK`, and no binlog position query
/// (the snapshot path reads `Binlog_snapshot_%` on MariaDB and runs FTWRL and
/// SHOW MASTER STATUS on MySQL), and a user with SELECT only (no RELOAD, no
/// REPLICATION CLIENT) validates.
#[test]
fn validate_takes_no_lock_and_needs_only_select() {
    let Some(server) = mariadb() else { return };
    let db = server.create_database().unwrap();
    populate(&db);
    let dir = test_dir();
    let (config, _path, pipeline) = start_copied(dir.path(), &server, &format!("{}.*", db.name()), db.name(), "items");
    assert!(pipeline.stop().success());

    server.create_user("validator", "validator-pw", &["SELECT ON *.*"]).unwrap();
    let grants = source_lines(&server, "SHOW GRANTS FOR 'validator'@'127.0.0.1'").join(" ");
    assert!(!grants.contains("RELOAD") && !grants.contains("REPLICATION"), "{grants}");
    let text = std::fs::read_to_string(&config).unwrap();
    let select_only = dir.path().join("select-only.toml");
    let text = text
        .replace(&format!("user = \"{CDC_USER}\""), "user = \"validator\"")
        .replace(&format!("password = \"{CDC_PASSWORD}\""), "password = \"validator-pw\"");
    std::fs::write(&select_only, text).unwrap();

    server.exec("SET GLOBAL log_output = 'TABLE'; SET GLOBAL general_log = 'ON'").unwrap();
    let (code, json, stderr) = validate_json(&select_only, &[]);
    server.exec("SET GLOBAL general_log = 'OFF'").unwrap();
    assert_eq!(code, 0, "a SELECT-only user validates: {json:#} {stderr}");
    assert_eq!(json["tables"][0]["status"], "passed");

    let statements = source_lines(
        &server,
        "SELECT CONVERT(argument USING utf8mb4) FROM mysql.general_log \
         WHERE command_type = 'Query' AND user_host LIKE 'validator[%'",
    );
    assert!(
        statements.iter().any(|s| s == "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY"),
        "validate reads in one consistent snapshot: {statements:#?}"
    );
    for s in &statements {
        let upper = s.to_ascii_uppercase();
        for forbidden in ["FLUSH", "LOCK", "BINLOG_SNAPSHOT", "MASTER STATUS", "BINARY LOG"] {
            assert!(!upper.contains(forbidden), "validate ran `{s}` ({forbidden}): {statements:#?}");
        }
    }
}

/// A table without primary key is mirrored as a changelog, whose rows are not
/// compared: its status is `not_compared`, never `passed`, in JSON and text.
#[test]
fn a_keyless_table_is_reported_not_compared_rather_than_passed() {
    let Some(server) = mariadb() else { return };
    let db = server.create_database().unwrap();
    populate(&db);
    db.exec("CREATE TABLE events (at INT, what VARCHAR(20)); INSERT INTO events VALUES (1, 'a'), (2, 'b')").unwrap();
    let dir = test_dir();
    let config = write_config(dir.path(), &server, &format!("{}.*", db.name()), "");
    let mut pipeline = Pipeline::start(&config);
    let version = master_version(&server);
    wait_committed(&mut pipeline, &table_path(dir.path(), db.name(), "items"), version);
    wait_committed(&mut pipeline, &table_path(dir.path(), db.name(), "events"), version);
    assert!(pipeline.stop().success());

    let (code, json, stderr) = validate_json(&config, &[]);
    assert_eq!(code, 0, "nothing failed: {json:#} {stderr}");
    let events = format!("{}.events", db.name());
    assert_eq!(json["not_compared"], serde_json::json!([events]));
    let tables = json["tables"].as_array().unwrap();
    let table = |name: &str| tables.iter().find(|t| t["table"] == name).unwrap_or_else(|| panic!("{json:#}"));
    let keyless = table(&events);
    assert_eq!(keyless["status"], "not_compared");
    assert_eq!(keyless["rows"], "not_compared");
    assert_eq!(keyless["source_rows"], serde_json::Value::Null);
    assert_eq!(keyless["delta_rows"], 2);
    let items = table(&format!("{}.items", db.name()));
    assert_eq!(items["status"], "passed");
    assert_eq!(items["rows"], "compared");

    let out = tributary(&["validate", "--config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    let row = text.lines().find(|l| l.starts_with(&events)).unwrap_or_else(|| panic!("{text}"));
    assert!(row.contains("not compared") && !row.contains("passed"), "{text}");
    assert!(text.contains("NOT COMPARED row by row"), "{text}");
    assert!(!text.contains("validation passed: 2 table(s)"), "{text}");
}

/// Timing and peak memory of `validate` on a large table (default 1M rows;
/// `TRIBUTARY_VALIDATE_ROWS` to change). Run with
/// `cargo test --release -p tributary --test validate_mariadb -- --ignored --nocapture`
/// (or `TRIBUTARY_VALIDATE_BIN=<release binary>` to time that one from a debug test build).
#[test]
#[ignore]
fn validate_large_table_figures() {
    let Some(server) = mariadb() else { return };
    let rows: u64 = std::env::var("TRIBUTARY_VALIDATE_ROWS").ok().and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    let db = server.create_database().unwrap();
    db.exec("CREATE TABLE big (id BIGINT PRIMARY KEY, a INT, b VARCHAR(40), c DECIMAL(12,2), d DATETIME(6))").unwrap();
    let mut start = 1;
    while start <= rows {
        let end = (start + 199_999).min(rows);
        db.exec(&format!(
            "INSERT INTO big SELECT seq, seq % 1000, CONCAT('row ', seq), seq / 100, \
             TIMESTAMPADD(SECOND, seq, '2026-01-01') FROM seq_{start}_to_{end}"
        ))
        .unwrap();
        start = end + 1;
    }
    let dir = test_dir();
    let config = write_config(dir.path(), &server, &format!("{}.*", db.name()), "");
    let path = table_path(dir.path(), db.name(), "big");
    let mut pipeline = Pipeline::start(&config);
    wait_committed(&mut pipeline, &path, master_version(&server));
    assert!(pipeline.stop().success());
    let started = std::time::Instant::now();
    let out = Command::new("/usr/bin/time")
        .args(["-f", "peak_rss_kb=%M"])
        .arg(std::env::var("TRIBUTARY_VALIDATE_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_tributary").into()))
        .args(["validate", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    let elapsed = started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}\n{stderr}\nvalidate of {rows} rows: {:.1} s", elapsed.as_secs_f64());
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
}

/// Every mapped type, written by the snapshot and by the binlog, compares equal:
/// the canonical comparison has no false differences.
#[test]
fn every_mapped_type_validates_clean() {
    use common::alltypes::{create_table, ROW_MAX, ROW_MIN};
    let Some(server) = mariadb() else { return };
    let db = server.create_database().unwrap();
    create_table(&db);
    db.exec(&format!("INSERT INTO alltypes VALUES {ROW_MIN}")).unwrap();
    let dir = test_dir();
    let config = write_config(dir.path(), &server, &format!("{}.alltypes", db.name()), "");
    let path = table_path(dir.path(), db.name(), "alltypes");
    let mut pipeline = Pipeline::start(&config);
    wait_committed(&mut pipeline, &path, master_version(&server));
    db.exec(&format!("INSERT INTO alltypes VALUES {ROW_MAX}")).unwrap();
    db.exec("INSERT INTO alltypes (id) VALUES (3)").unwrap();
    wait_committed(&mut pipeline, &path, master_version(&server));
    assert!(pipeline.stop().success());
    let (code, json, stderr) = validate_json(&config, &[]);
    assert_eq!(code, 0, "{json:#} {stderr}");
    assert_eq!(json["tables"][0]["source_rows"], 3);
    assert_eq!(json["tables"][0]["schema"]["type_changes"], serde_json::json!([]));
}
