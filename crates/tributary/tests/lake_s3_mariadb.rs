//! The lake on object storage: `sink.delta.root = "s3://bucket/prefix"` on a
//! real S3 server (moto, on loopback), fed from a real MariaDB — snapshot,
//! stream, updates and deletes, a schema change and kill -9 mid-stream; read
//! back by delta-rs (Python) and by Spark through `s3a://`. Bad input: a
//! missing bucket, a store that is down, a store without conditional writes,
//! a wrong access key id and a wrong secret.
//!
//! The test process talks to the server through the standard `AWS_*`
//! environment (set once, before any thread of this file reads it); the
//! pipeline gets the same settings from its `[sink.delta.storage]` section.

mod common;

use common::s3::{put_lake_on_s3, s3};
use common::workload::{assert_mirror_and_feed_exact, create_workload_table, mariadb_try_exec, Workload};
use common::*;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tributary_testkit::{require, S3Options, S3Server};

const INITIAL_ROWS: u64 = 300;

/// The pipeline config of [`write_config`] with its lake at `root` on `server`.
fn s3_config(dir: &Path, source: &tributary_testkit::MariaDb, server: &S3Server, root: &str) -> PathBuf {
    let config = write_config(dir, source, "shop.*", "");
    put_lake_on_s3(&config, dir, server, root);
    config
}

#[test]
fn a_mariadb_pipeline_streams_into_s3_exactly_once_through_kill_9_and_spark_reads_it() {
    if !failpoints() {
        return;
    }
    let Some(python) = python() else { return };
    let Some(s3) = s3() else { return };
    let Some(server) = mariadb() else { return };
    create_workload_table(&server, "shop", INITIAL_ROWS);
    let dir = test_dir();
    let root = s3.url("lake/pipeline-a");
    let config = s3_config(dir.path(), &server, s3, &root);
    // Compaction and vacuum run on S3 too, often enough to happen during the
    // test: with deletion vectors a batch adds one small file and rewrites
    // none, and a run between two kills commits only 2 – 3 batches.
    let text = std::fs::read_to_string(&config).unwrap();
    let maintenance = "[maintenance]\nmin_small_files = 2\ncheck_interval_secs = 1\nvacuum = false\n";
    std::fs::write(&config, format!("{text}\n{maintenance}")).unwrap();
    let table = PathBuf::from(format!("{root}/shop/t"));

    let check = check_passes(&config);
    assert!(check.contains("conditional writes honoured"), "{check}");

    let mut pipeline = Pipeline::start(&config);
    let mut logs = String::new();
    wait_committed(&mut pipeline, &table, master_version(&server));
    let port = server.port();
    let workload = Workload::start(INITIAL_ROWS, move |sql| mariadb_try_exec(port, "shop", sql));
    for round in 0..5 {
        workload.wait_more(40);
        if round == 1 {
            server.exec("ALTER TABLE shop.t ADD COLUMN note VARCHAR(20) DEFAULT 'n'").unwrap();
        }
        logs.push_str(&pipeline.log_text());
        pipeline.kill9();
        workload.wait_more(20);
        pipeline = Pipeline::start(&config);
        wait_committed(&mut pipeline, &table, master_version(&server) - 1);
    }
    workload.wait_more(20);
    let confirmed = workload.finish();
    wait_committed(&mut pipeline, &table, master_version(&server));
    logs.push_str(&pipeline.log_text());
    assert!(pipeline.stop().success());
    eprintln!("{confirmed} workload transactions, 5 kill -9");
    let lines = |what: &str| logs.lines().filter(|l| l.contains(what)).count();
    eprintln!("{} compactions on S3", lines("compacted small files"));
    assert!(lines("compacted small files") >= 1, "compaction ran on S3");

    assert_mirror_and_feed_exact(&python, &table, &server, "shop", "on S3 after 5 kill -9 and a schema change");
    assert!(!dir.path().join("s3:").exists() && !Path::new("s3:").exists(), "nothing local named after the URL");

    let status = tributary(&["status", "--config", config.to_str().unwrap()]);
    let status_text = String::from_utf8_lossy(&status.stdout);
    assert!(status.status.success() && status_text.contains("shop.t"), "status on S3: {status_text}");

    let Some(spark) = spark("a Spark read of the S3 lake") else { return };
    spark.register_s3(s3).unwrap();
    let s3a = s3.s3a_url("lake/pipeline-a/shop/t");
    let rows = spark.rows(Path::new(&s3a), &["id"]).unwrap();
    let spark_ids: Vec<String> =
        rows.iter().map(|r| format!("{}\t{}", r["id"].as_i64().unwrap(), r["v"].as_i64().unwrap())).collect();
    let source_ids = source_lines(&server, "SELECT id, v FROM shop.t ORDER BY id");
    assert_eq!(spark_ids, source_ids, "Spark over s3a reads the source's rows");
    let feed = change_feed(&python, &table, 0);
    let spark_feed = spark.cdf_count(Path::new(&s3a), 0, None).unwrap();
    assert_eq!(spark_feed, feed.len() as u64, "Spark and delta-rs read the same change feed");

    // Vacuum on S3 (retention 0: the history goes, the current rows stay).
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("vacuum = false", "vacuum = true\nvacuum_interval_secs = 2\nvacuum_retention_hours = 0.0");
    std::fs::write(&config, text).unwrap();
    let mut pipeline = Pipeline::start(&config);
    let started = std::time::Instant::now();
    while !pipeline.log_text().contains("vacuumed unreferenced files") {
        pipeline.assert_running();
        assert!(started.elapsed() < std::time::Duration::from_secs(60), "no vacuum on S3: {}", pipeline.log_text());
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let vacuumed = pipeline.log_text().lines().find(|l| l.contains("vacuumed")).unwrap_or_default().to_string();
    eprintln!("{vacuumed}");
    assert!(pipeline.stop().success());
    let source_md5 = source_lines(&server, "SELECT id, MD5(CONCAT_WS('|', id, v, w)) FROM shop.t ORDER BY id");
    assert_eq!(mirror_checksums(&python, &table), source_md5, "mirror = source after the vacuum on S3");
    assert_eq!(spark.count(Path::new(&s3a)).unwrap(), source_ids.len() as u64, "Spark reads the vacuumed table");
    let requests = s3.request_counts().unwrap();
    eprintln!("S3 requests served: {requests:?}");
}

#[test]
fn an_s3_lake_that_cannot_hold_commits_safely_is_refused_in_one_line() {
    let Some(s3) = s3() else { return };
    let Some(server) = mariadb() else { return };
    server.exec("CREATE DATABASE shop; CREATE TABLE shop.t (id INT PRIMARY KEY)").unwrap();
    let dir = test_dir();

    // A bucket that does not exist.
    let config = s3_config(dir.path(), &server, s3, "s3://no-such-bucket-here/lake");
    let line = run_and_check_fail(&config, |l| l.contains("bucket does not exist"));
    assert!(line.contains("sink.delta.root"), "{line}");

    // A store that is down (a free port nobody listens on).
    let down = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let down_port = down.local_addr().unwrap().port();
    drop(down);
    let text =
        std::fs::read_to_string(&config).unwrap().replace(&s3.endpoint(), &format!("http://127.0.0.1:{down_port}"));
    std::fs::write(&config, text.replace("s3://no-such-bucket-here/lake", &s3.url("lake"))).unwrap();
    run_and_check_fail(&config, |l| l.contains("cannot reach the store"));

    // A store that ignores If-None-Match: two writers could overwrite each other's commits.
    let options = S3Options { conditional_writes: false, ..S3Options::default() };
    let Some(lax) = require("the S3 test server (moto; `make setup`)", S3Server::start_with(options)) else {
        return;
    };
    let config = s3_config(dir.path(), &server, &lax, &lax.url("lake"));
    run_and_check_fail(&config, |l| l.contains("ignores conditional writes"));
    let leftovers = lax.request_counts().unwrap();
    eprintln!("requests to the lax store: {leftovers:?}");

    // A store that checks signatures, given a key id it does not know, then the right id with a wrong secret.
    let options = S3Options { require_credentials: true, ..S3Options::default() };
    let Some(strict) = require("the S3 test server (moto; `make setup`)", S3Server::start_with(options)) else {
        return;
    };
    let config = s3_config(dir.path(), &server, &strict, &strict.url("lake"));
    let right = std::fs::read_to_string(&config).unwrap();
    let key_id = format!("access_key_id = \"{}\"", strict.access_key_id());
    std::fs::write(&config, right.replace(&key_id, "access_key_id = \"AKIANOTKNOWNHERE0000\"")).unwrap();
    let line = run_and_check_fail(&config, |l| l.contains("refused the credentials"));
    assert!(line.contains("secret_access_key"), "the line names the setting to fix: {line}");
    assert!(!line.contains(strict.secret_access_key()), "no secret in the error: {line}");
    let secret = format!("secret_access_key = \"{}\"", strict.secret_access_key());
    std::fs::write(&config, right.replace(&secret, "secret_access_key = \"not-the-secret\"")).unwrap();
    let line = run_and_check_fail(&config, |l| l.contains("refused the credentials"));
    assert!(!line.contains("not-the-secret"), "no secret in the error: {line}");
    // The right key passes the same check (the store is not refusing everything).
    std::fs::write(&config, &right).unwrap();
    check_passes(&config);

    // Nothing half-written: no table was created in any of them.
    assert!(!tributary_delta::table_exists(&PathBuf::from(lax.url("lake/shop/t"))));
    assert!(!tributary_delta::table_exists(&PathBuf::from(s3.url("lake/shop/t"))));
}

/// `config` as pipeline `name` with replica id `server_id`, capturing `include`.
fn as_pipeline(config: &Path, name: &str, server_id: u32, include: &str) -> PathBuf {
    let mut text: Vec<String> = std::fs::read_to_string(config)
        .unwrap()
        .lines()
        .map(|line| match line {
            l if l.starts_with("name = ") => format!("name = \"{name}\""),
            l if l.starts_with("server_id = ") => format!("server_id = {server_id}"),
            l if l.starts_with("include = ") => format!("include = [\"{include}\"]"),
            l => l.to_string(),
        })
        .collect();
    if name == "east" {
        // One compactor per table: east's is the external one (two at once can
        // duplicate rows; Tributary stops the table when it sees that).
        assert!(!text.iter().any(|l| l == "[maintenance]"), "one [maintenance] section");
        text.push("[maintenance]\ncompaction = false\n".into());
    }
    let path = config.with_file_name(format!("{name}.toml"));
    std::fs::write(&path, text.join("\n")).unwrap();
    path
}

/// delta-rs `optimize.compact()` on an S3 table every 0.3 s for `secs` (the
/// `AWS_*` environment of this process); prints a JSON summary.
const COMPACTOR: &str = r#"
import json, os, sys, time
from deltalake import DeltaTable
path, secs = sys.argv[1], float(sys.argv[2])
end = time.time() + secs
done = failed = 0
while time.time() < end:
    try:
        if DeltaTable(path).optimize.compact().get("numFilesRemoved", 0) > 0:
            done += 1
    except Exception:  # lost against the pipeline's commit: try again
        failed += 1
    time.sleep(0.3)
print(json.dumps({"compactions": done, "failed": failed}))
sys.stdout.flush()
os._exit(0)
"#;

#[test]
fn two_pipelines_share_one_s3_lake_an_external_compactor_runs_and_a_third_on_a_taken_table_is_refused() {
    let Some(python) = python() else { return };
    let Some(s3) = s3() else { return };
    let Some(server) = mariadb() else { return };
    create_workload_table(&server, "east", INITIAL_ROWS);
    create_workload_table(&server, "west", INITIAL_ROWS);
    let dir = test_dir();
    let root = s3.url("lake/shared");
    let base = s3_config(dir.path(), &server, s3, &root);
    let east = as_pipeline(&base, "east", 5201, "east.*");
    let west = as_pipeline(&base, "west", 5202, "west.*");
    let intruder = as_pipeline(&base, "intruder", 5203, "east.*");
    let (east_table, west_table) = (PathBuf::from(format!("{root}/east/t")), PathBuf::from(format!("{root}/west/t")));

    let mut east_pipeline = Pipeline::start(&east);
    let mut west_pipeline = Pipeline::start(&west);
    wait_committed_as(&mut east_pipeline, &east_table, master_version(&server) - 1, "east");
    wait_committed_as(&mut west_pipeline, &west_table, master_version(&server) - 1, "west");

    let secs = 60;
    let compactor = std::process::Command::new(&python)
        .args(["-c", COMPACTOR])
        .arg(&east_table)
        .arg(secs.to_string())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let port = server.port();
    let east_load = Workload::start(INITIAL_ROWS, move |sql| mariadb_try_exec(port, "east", sql));
    let west_load = Workload::start(INITIAL_ROWS, move |sql| mariadb_try_exec(port, "west", sql));
    std::thread::sleep(Duration::from_secs(secs));
    let (east_n, west_n) = (east_load.finish(), west_load.finish());
    let out = compactor.wait_with_output().unwrap();
    assert!(out.status.success(), "compactor: {}", String::from_utf8_lossy(&out.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    eprintln!("{east_n} + {west_n} transactions in {secs} s; external compactor on east: {summary}");
    assert!(summary["compactions"].as_u64().unwrap() >= 1, "the compactor must have compacted: {summary}");
    // A table's position moves with its own transactions: one last row each, in turn.
    server.exec("INSERT INTO east.t (id, v, w) VALUES (1000000, 0, 'last')").unwrap();
    wait_committed_as(&mut east_pipeline, &east_table, master_version(&server), "east");
    server.exec("INSERT INTO west.t (id, v, w) VALUES (1000000, 0, 'last')").unwrap();
    wait_committed_as(&mut west_pipeline, &west_table, master_version(&server), "west");
    assert!(east_pipeline.stop().success() && west_pipeline.stop().success());

    // A third pipeline configured onto east's table refuses and writes nothing.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let version_before = rt.block_on(tributary_delta::table_status(&east_table, "east")).unwrap().version;
    let mut third = Pipeline::start(&intruder);
    let status = third.wait_exit(Duration::from_secs(60)).expect("the third pipeline must stop by itself");
    assert!(!status.success());
    let log = third.log_text();
    assert!(log.contains("belongs to pipeline \"east\""), "{log}");
    let version_after = rt.block_on(tributary_delta::table_status(&east_table, "east")).unwrap().version;
    assert_eq!(version_after, version_before, "the refused pipeline committed nothing to east's table");
    assert_mirror_and_feed_exact(&python, &east_table, &server, "east", "east on S3 beside west and a compactor");
    assert_mirror_and_feed_exact(&python, &west_table, &server, "west", "west on S3 beside east");
}
