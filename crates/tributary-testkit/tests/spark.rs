//! The Spark verifier reads Delta tables through Spark 3.5 + Delta 3.x: one
//! JVM for this whole test binary. The tables here are written by another
//! engine (delta-rs, the Python `deltalake` package) with Change Data Feed on,
//! so Spark is checked as an independent reader.

use serde_json::{json, Value as Json};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use tributary_testkit::spark::{delta_jars, venv_python, Row};
use tributary_testkit::{require, SparkVerifier, SparkVerifierOptions, TestDir};

fn verifier() -> Option<&'static SparkVerifier> {
    require("disk space", tributary_testkit::ensure_space_for_heavy_tests("the Spark tests"))?;
    require("Spark verifier (pyspark + Delta jars; `make setup`)", SparkVerifier::shared())
}

/// Writes a CDF-enabled table with delta-rs: v0 three rows, v1 updates id 2,
/// v2 deletes id 3, v3 appends id 4.
fn write_table(path: &Path) {
    const SCRIPT: &str = r#"
import datetime, decimal, sys
import pyarrow as pa
from deltalake import DeltaTable, write_deltalake
path = sys.argv[1]
schema = pa.schema([
    ("id", pa.int64()), ("name", pa.string()), ("amount", pa.decimal128(10, 2)),
    ("at", pa.timestamp("us", tz="UTC")), ("day", pa.date32()), ("payload", pa.binary()),
    ("active", pa.bool_()), ("score", pa.float64()),
])
def row(i, name):
    return {"id": i, "name": name, "amount": decimal.Decimal(f"{i}.50"),
            "at": datetime.datetime(2024, 1, i, 3, 4, 5, 123456, tzinfo=datetime.timezone.utc),
            "day": datetime.date(2024, 2, i), "payload": bytes([i, 255]), "active": i % 2 == 1, "score": i / 4}
write_deltalake(path, pa.Table.from_pylist([row(1, "ann"), row(2, "bob"), row(3, "cy")], schema),
                configuration={"delta.enableChangeDataFeed": "true"})
dt = DeltaTable(path)
dt.update({"name": "'bob-2'"}, predicate="id = 2")
dt.delete("id = 3")
write_deltalake(path, pa.Table.from_pylist([row(4, "dee")], schema), mode="append")
# delta-rs can abort at interpreter exit ("terminate called without an active exception"): leave at once.
import os
os._exit(0)
"#;
    let out = Command::new(venv_python()).arg("-c").arg(SCRIPT).arg(path).output().expect("run the venv python");
    assert!(out.status.success(), "delta-rs writer failed: {}", String::from_utf8_lossy(&out.stderr));
}

fn ids_and(rows: &[Row], column: &str) -> Vec<(i64, Json)> {
    rows.iter().map(|r| (r["id"].as_i64().unwrap(), r[column].clone())).collect()
}

#[test]
fn spark_reads_schema_count_rows_history_cdf_and_time_travel_of_a_delta_rs_table() {
    let Some(spark) = verifier() else { return };
    assert!(spark.spark_version().starts_with("3.5."), "{}", spark.spark_version());
    let dir = TestDir::new().unwrap();
    let table = dir.path().join("orders");
    write_table(&table);

    let schema: Vec<(String, String)> =
        spark.schema(&table).unwrap().into_iter().map(|f| (f.name, f.data_type)).collect();
    let expected = [
        ("id", "bigint"),
        ("name", "string"),
        ("amount", "decimal(10,2)"),
        ("at", "timestamp"),
        ("day", "date"),
        ("payload", "binary"),
        ("active", "boolean"),
        ("score", "double"),
    ];
    assert_eq!(schema, expected.map(|(n, t)| (n.to_string(), t.to_string())));

    assert_eq!(spark.count(&table).unwrap(), 3);
    let rows = spark.rows(&table, &["id"]).unwrap();
    assert_eq!(ids_and(&rows, "name"), [(1, json!("ann")), (2, json!("bob-2")), (4, json!("dee"))]);
    assert_eq!(
        Json::Object(rows[0].clone()),
        json!({"id": 1, "name": "ann", "amount": "1.50", "at": "2024-01-01T03:04:05.123456+00:00",
               "day": "2024-02-01", "payload": "01ff", "active": true, "score": 0.25})
    );

    let history = spark.history(&table).unwrap();
    let ops: Vec<(i64, &str)> =
        history.iter().map(|h| (h["version"].as_i64().unwrap(), h["operation"].as_str().unwrap())).collect();
    assert_eq!(ops, [(0, "WRITE"), (1, "UPDATE"), (2, "DELETE"), (3, "WRITE")]);

    let cdf = spark.cdf(&table, 0, None, &["_commit_version", "id", "_change_type"]).unwrap();
    let feed: Vec<(i64, i64, &str, &str)> = cdf
        .iter()
        .map(|r| {
            let (v, id) = (r["_commit_version"].as_i64().unwrap(), r["id"].as_i64().unwrap());
            (v, id, r["_change_type"].as_str().unwrap(), r["name"].as_str().unwrap())
        })
        .collect();
    assert_eq!(
        feed,
        [
            (0, 1, "insert", "ann"),
            (0, 2, "insert", "bob"),
            (0, 3, "insert", "cy"),
            (1, 2, "update_postimage", "bob-2"),
            (1, 2, "update_preimage", "bob"),
            (2, 3, "delete", "cy"),
            (3, 4, "insert", "dee"),
        ]
    );
    assert!(cdf.iter().all(|r| r["_commit_timestamp"].as_str().is_some_and(|t| t.ends_with("+00:00"))));
    // Between two versions, both inclusive.
    let middle = spark.cdf(&table, 1, Some(2), &[]).unwrap();
    assert_eq!(middle.len(), 3);
    assert!(middle.iter().all(|r| (1..=2).contains(&r["_commit_version"].as_i64().unwrap())));
    assert_eq!(spark.cdf_count(&table, 0, None).unwrap(), 7);

    // Time travel: version 0 still has the original rows.
    assert_eq!(spark.count_at(&table, 0).unwrap(), 3);
    let v0 = spark.rows_at(&table, 0, &["id"]).unwrap();
    assert_eq!(ids_and(&v0, "name"), [(1, json!("ann")), (2, json!("bob")), (3, json!("cy"))]);
    assert_eq!(spark.count_at(&table, 2).unwrap(), 2);
}

#[test]
fn the_repo_spark_defaults_make_new_delta_tables_change_data_feed_tables() {
    let Some(spark) = verifier() else { return };
    let dir = TestDir::new().unwrap();
    let table = dir.path().join("created_by_spark");
    let setting = spark.sql("SET spark.databricks.delta.properties.defaults.enableChangeDataFeed").unwrap();
    assert_eq!(setting[0]["value"], "true", "{setting:?}");
    spark.sql(&format!("CREATE TABLE delta.`{}` (id BIGINT, v STRING) USING delta", table.display())).unwrap();
    spark.sql(&format!("INSERT INTO delta.`{}` VALUES (1, 'a'), (2, 'b')", table.display())).unwrap();
    let props = spark.sql(&format!("SHOW TBLPROPERTIES delta.`{}`", table.display())).unwrap();
    assert!(props.iter().any(|p| p["key"] == "delta.enableChangeDataFeed" && p["value"] == "true"), "{props:?}");
    assert_eq!(spark.cdf_count(&table, 1, None).unwrap(), 2);
}

#[test]
fn a_failing_request_is_answered_and_the_verifier_keeps_serving() {
    let Some(spark) = verifier() else { return };
    let missing = std::env::temp_dir().join("tributary-no-such-table");
    let err = spark.count(&missing).unwrap_err().to_string();
    assert!(err.contains("tributary-no-such-table") && err.contains("Exception"), "{err}");
    let err = spark.call(json!({"op": "frobnicate"})).unwrap_err().to_string();
    assert!(err.contains("unknown op 'frobnicate'"), "{err}");
    assert_eq!(spark.sql("SELECT 1 AS one").unwrap()[0]["one"], 1);
}

#[test]
fn a_dead_verifier_fails_every_call_with_its_stderr_tail() {
    // A stand-in verifier that answers ready, then dies on the first request.
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("dying.py");
    std::fs::write(
        &script,
        "import sys, json\nprint(json.dumps({'ready': True, 'spark_version': 'fake'}), flush=True)\n\
         sys.stdin.readline()\nsys.stderr.write('java.lang.OutOfMemoryError: Java heap space\\n')\nsys.exit(3)\n",
    )
    .unwrap();
    let options = SparkVerifierOptions {
        python: "python3".into(),
        script,
        jars: vec![],
        conf: None,
        startup_timeout: Duration::from_secs(30),
        call_timeout: Duration::from_secs(30),
    };
    let Some(fake) = require("java (Spark verifier)", SparkVerifier::start(options)) else { return };
    let err = fake.count(Path::new("/x")).unwrap_err().to_string();
    assert!(err.contains("died (exit status: 3)") && err.contains("OutOfMemoryError: Java heap space"), "{err}");
    let start = Instant::now();
    let again = fake.rows(Path::new("/x"), &[]).unwrap_err().to_string();
    assert!(again.contains("OutOfMemoryError") && start.elapsed() < Duration::from_secs(1), "{again}");
}

#[test]
fn a_verifier_that_cannot_start_reports_its_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("broken.py");
    std::fs::write(&script, "raise SystemExit('spark_verifier: jar not found: /nowhere/delta.jar')\n").unwrap();
    let options = SparkVerifierOptions {
        python: "python3".into(),
        script,
        jars: vec![],
        conf: None,
        startup_timeout: Duration::from_secs(30),
        call_timeout: Duration::from_secs(30),
    };
    let err = match SparkVerifier::start(options) {
        Err(tributary_testkit::TestKitError::MissingBinary { .. }) if !tributary_testkit::in_ci() => return,
        Err(e) => e.to_string(),
        Ok(v) => panic!("started: {v:?}"),
    };
    assert!(err.contains("exited during startup") && err.contains("jar not found: /nowhere/delta.jar"), "{err}");
}

#[test]
fn missing_delta_jars_name_the_directory_and_the_fetch_script() {
    let dir = tempfile::tempdir().unwrap();
    let err = delta_jars(dir.path()).unwrap_err().to_string();
    assert!(err.contains(&dir.path().display().to_string()) && err.contains("scripts/fetch_delta_jars.sh"), "{err}");
}

#[test]
fn a_maven_failure_names_the_artifact_and_the_cache_dir() {
    // Offline, a version that is in no local repository: Maven fails without the network.
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new("bash")
        .arg(tributary_testkit::disk::repo_root().join("scripts/fetch_delta_jars.sh"))
        .env("DELTA_VERSION", "0.0.1-missing")
        .env("TRIBUTARY_JARS_DIR", dir.path())
        .env("TRIBUTARY_MAVEN_ARGS", "-o")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("io.delta:delta-spark_2.12:0.0.1-missing"), "names the artifact: {stderr}");
    assert!(stderr.contains(&dir.path().display().to_string()), "names the cache dir: {stderr}");
}
