//! `tributary validate` against a real PostgreSQL and the mirror the pipeline
//! wrote: an untouched mirror passes, one changed behind the pipeline's back
//! fails with the differing keys, an unreachable source cannot be validated
//! (exit 2), a column the source dropped and the mirror keeps is a note, and
//! every mapped type compares equal.

mod common;

use common::pg::*;
use common::*;
use serde_json::Value as Json;
use std::process::Command;

const TABLE_DDL: &str = "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(50), price NUMERIC(10,2), \
                         at TIMESTAMPTZ, qty BIGINT, tags TEXT[], doc JSONB, ratio DOUBLE PRECISION, raw BYTEA)";

fn populate(db: &tributary_testkit::postgres::PgDatabase<'_>) {
    sql(db, TABLE_DDL);
    sql(
        db,
        "INSERT INTO items SELECT i, 'item ' || i, i + 0.25, '2026-01-02 03:04:05+02'::timestamptz + i * interval '1.5 s', \
         i * 1000, ARRAY['t' || i, 'x y'], jsonb_build_object('i', i, 'k', 'v'), i / 3.0, decode(md5(i::text), 'hex') \
         FROM generate_series(1, 50) i",
    );
}

fn keys(table: &Json, kind: &str) -> Vec<i64> {
    let mut keys: Vec<i64> =
        table[kind]["keys"].as_array().unwrap().iter().map(|k| k["id"].as_i64().unwrap()).collect();
    keys.sort();
    keys
}

#[test]
fn untouched_mirror_passes_and_a_mirror_changed_behind_the_pipelines_back_fails_with_its_keys() {
    let Some(server) = postgres() else { return };
    let Some(python) = python() else { return };
    let db = server.create_database().unwrap();
    populate(&db);
    let dir = test_dir();
    let config = write_pg_config(dir.path(), &server, &db, "public.*", "");
    let path = table_path(dir.path(), "public", "items");
    let mut pipeline = Pipeline::start(&config);
    wait_committed(&mut pipeline, &path, 1);
    change(&db, "UPDATE items SET qty = qty + 1, tags = tags || 'more'::text WHERE id <= 10");
    let lsn = change(&db, "DELETE FROM items WHERE id = 50");
    wait_past(&mut pipeline, &path, lsn);
    assert!(pipeline.stop().success());

    let (code, json, stderr) = validate_json(&config, &["--max-lag-secs", "3600"]);
    assert_eq!(code, 0, "untouched mirror must pass: {json:#} {stderr}");
    let table = &json["tables"][0];
    assert_eq!(table["table"], "public.items");
    assert_eq!(table["status"], "passed");
    assert_eq!(table["source_rows"], 49);
    assert_eq!(table["delta_rows"], 49);
    assert!(table["chunks"].as_u64().unwrap() >= 7, "read in chunks: {table}");

    // Human output of a passing run.
    let out = tributary(&["validate", "--config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
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
    sql(&db, "INSERT INTO items (id, name) VALUES (99, 'new')");

    let (code, json, stderr) = validate_json(&config, &[]);
    assert_eq!(code, 1, "changed mirror must fail: {json:#} {stderr}");
    assert_eq!(json["passed"], false);
    let table = &json["tables"][0];
    assert_eq!(table["status"], "failed");
    assert_eq!(keys(table, "different"), vec![7]);
    assert_eq!(keys(table, "missing_in_delta"), vec![3, 99]);
    assert!(keys(table, "extra_in_delta").is_empty());

    // A row only in Delta: delete it on the source. `--table` names schema.table.
    sql(&db, "DELETE FROM items WHERE id = 20");
    let (code, json, _) = validate_json(&config, &["--table", "public.items"]);
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
fn unreachable_source_cannot_be_validated_exit_2() {
    let Some(server) = postgres() else { return };
    let db = server.create_database().unwrap();
    let dir = test_dir();
    let config = write_pg_config(dir.path(), &server, &db, "public.*", "");
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

    // --json prints the error as JSON too.
    let out = tributary(&["validate", "--config", config.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(2));
    let json: Json = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["passed"], false);
    assert!(json["error"].as_str().unwrap().contains(&free.to_string()), "{json}");
}

#[test]
fn a_column_the_source_dropped_and_the_mirror_keeps_is_a_note_not_a_failure() {
    let Some(server) = postgres() else { return };
    let db = server.create_database().unwrap();
    sql(
        &db,
        "CREATE TABLE t (id INT PRIMARY KEY, a TEXT, b INT, c TEXT); \
         INSERT INTO t SELECT i, 'a' || i, i, 'c' || i FROM generate_series(1, 20) i",
    );
    let dir = test_dir();
    let config = write_pg_config(dir.path(), &server, &db, "public.t", "");
    let path = table_path(dir.path(), "public", "t");
    let mut pipeline = Pipeline::start(&config);
    wait_committed(&mut pipeline, &path, 1);
    // A column dropped from the middle of the table; the next change makes the pipeline follow it.
    change(&db, "ALTER TABLE t DROP COLUMN a");
    let lsn = change(&db, "UPDATE t SET b = b * 10 WHERE id <= 5; INSERT INTO t VALUES (21, 21, 'c21')");
    wait_past(&mut pipeline, &path, lsn);
    assert!(pipeline.stop().success());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mirror = rt.block_on(tributary_delta::mirror::mirror_schema(&path)).unwrap();
    assert_eq!(mirror.kept_columns(), vec!["a"], "the mirror keeps the dropped column: {mirror:?}");

    let (code, json, stderr) = validate_json(&config, &[]);
    assert_eq!(code, 0, "a kept column is no failure: {json:#} {stderr}");
    let table = &json["tables"][0];
    assert_eq!(table["status"], "passed");
    assert_eq!(table["source_rows"], 21);
    assert_eq!(table["schema"]["kept_columns"], serde_json::json!(["a"]));
    assert_eq!(table["schema"]["extra_columns"], serde_json::json!([]));
    let notes = table["notes"].to_string();
    assert!(notes.contains("column a: kept column dropped by the source"), "{notes}");
    let out = tributary(&["validate", "--config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("note: column a: kept column dropped by the source"), "{text}");

    // A drop the pipeline has not followed yet (no change since; pipeline
    // stopped): the source's columns still match, so it passes with a note.
    sql(&db, "ALTER TABLE t DROP COLUMN c");
    let (code, json, stderr) = validate_json(&config, &[]);
    assert_eq!(code, 0, "{json:#} {stderr}");
    let table = &json["tables"][0];
    assert_eq!(table["schema"]["dropped_not_followed"], serde_json::json!(["c"]));
    assert!(table["notes"].to_string().contains("column c: dropped by the source"), "{table}");

    // The row checksums still see a changed source column.
    sql(&db, "UPDATE t SET b = -1 WHERE id = 9");
    let (code, json, _) = validate_json(&config, &[]);
    assert_eq!(code, 1, "{json:#}");
    assert_eq!(keys(&json["tables"][0], "different"), vec![9]);
}

/// Every mapped type, written by the snapshot and by pgoutput, compares equal:
/// the canonical comparison has no false differences.
#[test]
fn every_mapped_type_validates_clean() {
    use common::pg_types::{create_table, insert_sql, DATABASE_TIME_ZONE};
    let Some(server) = postgres() else { return };
    let db = server.create_database().unwrap();
    db.exec(&format!("ALTER DATABASE \"{}\" SET TimeZone = '{DATABASE_TIME_ZONE}'", db.name())).unwrap();
    create_table(&db);
    for variant in 0..4 {
        sql(&db, &insert_sql(variant as i64 + 1, variant));
    }
    let dir = test_dir();
    let config = write_pg_config(dir.path(), &server, &db, "public.alltypes", "");
    let path = table_path(dir.path(), "public", "alltypes");
    let mut pipeline = Pipeline::start(&config);
    wait_committed(&mut pipeline, &path, 1);
    let mut lsn = 0;
    for variant in 0..4 {
        lsn = change(&db, &insert_sql(variant as i64 + 101, variant));
    }
    wait_past(&mut pipeline, &path, lsn);
    assert!(pipeline.stop().success());
    let (code, json, stderr) = validate_json(&config, &[]);
    assert_eq!(code, 0, "{json:#} {stderr}");
    assert_eq!(json["tables"][0]["source_rows"], 8);
    assert_eq!(json["tables"][0]["schema"]["type_changes"], serde_json::json!([]));
}
