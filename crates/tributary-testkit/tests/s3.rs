//! The test S3 server (moto) does what a lake on S3 relies on, checked with
//! clients nobody here wrote: boto3 sees `If-None-Match: *` refuse an existing
//! key (412) and create a new one, on PutObject and CompleteMultipartUpload,
//! also under racing writers; two delta-rs writers racing for one Delta log
//! version leave exactly one winner; Spark 3.5 + Delta reads a delta-rs table
//! on it through `s3a://`.

use serde_json::{json, Value as Json};
use std::path::Path;
use std::process::Command;
use tributary_testkit::s3::{S3Options, S3Server};
use tributary_testkit::spark::venv_python;
use tributary_testkit::{require, SparkVerifier};

fn s3() -> Option<S3Server> {
    require("S3 server (moto; `make setup`)", S3Server::start())
}

/// Runs `script` with the venv Python and the server's environment; its last
/// stdout line is JSON.
fn run_python(s3: &S3Server, script: &str, args: &[&str]) -> Json {
    let out = s3
        .apply_env(Command::new(venv_python()).arg("-c").arg(script).args(args))
        .output()
        .expect("run the venv python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "python failed ({}): {}\n{}\nS3 server log: {}",
        out.status,
        stdout,
        String::from_utf8_lossy(&out.stderr),
        s3.log_path().display()
    );
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

/// The S3 server's request log lines for `key` as (method, status), ANSI colours stripped.
fn logged_requests(s3: &S3Server, key: &str) -> Vec<(String, u16)> {
    let log = std::fs::read_to_string(s3.log_path()).unwrap();
    log.lines()
        .filter(|l| l.contains(&format!(" /{}/{key} ", s3.bucket())))
        .filter_map(|l| {
            let request = l.split('"').nth(1)?;
            let method = request.split_whitespace().next()?.trim_start_matches(|c: char| !c.is_ascii_uppercase());
            let status = l.rsplit('"').next()?.split_whitespace().next()?.parse().ok()?;
            Some((method.to_string(), status))
        })
        .collect()
}

const BOTO3_CONDITIONAL: &str = r#"
import json, os, sys
import boto3, botocore
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
bucket = sys.argv[1]
def status(call):
    try:
        call()
        return 200
    except botocore.exceptions.ClientError as e:
        return e.response["ResponseMetadata"]["HTTPStatusCode"]
def body(key):
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
def multipart(key, data):
    up = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    part = s3.upload_part(Bucket=bucket, Key=key, UploadId=up, PartNumber=1, Body=data)
    return lambda: s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=up, IfNoneMatch="*",
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})
out = {}
out["put_new"] = status(lambda: s3.put_object(Bucket=bucket, Key="log/1.json", Body=b"first", IfNoneMatch="*"))
out["put_existing"] = status(lambda: s3.put_object(Bucket=bucket, Key="log/1.json", Body=b"second", IfNoneMatch="*"))
out["after_put"] = body("log/1.json")
out["put_unconditional"] = status(lambda: s3.put_object(Bucket=bucket, Key="log/other", Body=b"x"))
out["multipart_existing"] = status(multipart("log/1.json", b"third"))
out["after_multipart"] = body("log/1.json")
out["multipart_new"] = status(multipart("log/2.json", b"created"))
out["after_multipart_new"] = body("log/2.json")
print(json.dumps(out))
"#;

#[test]
fn if_none_match_refuses_an_existing_key_and_creates_a_new_one() {
    let Some(s3) = s3() else { return };
    let out = run_python(&s3, BOTO3_CONDITIONAL, &[s3.bucket()]);
    assert_eq!(
        out,
        json!({
            "put_new": 200, "put_existing": 412, "after_put": "first", "put_unconditional": 200,
            "multipart_existing": 412, "after_multipart": "first",
            "multipart_new": 200, "after_multipart_new": "created",
        })
    );
    let counts = s3.request_counts().unwrap();
    assert!(counts["PUT"] >= 5 && counts["POST"] >= 4 && counts["GET"] >= 3, "{counts:?}");
}

#[test]
fn without_conditional_writes_a_create_silently_overwrites() {
    // What a store without If-None-Match support does, for the bad-input tests of the sink.
    let options = S3Options { conditional_writes: false, ..S3Options::default() };
    let Some(s3) = require("S3 server (moto; `make setup`)", S3Server::start_with(options)) else { return };
    let out = run_python(&s3, BOTO3_CONDITIONAL, &[s3.bucket()]);
    assert_eq!((&out["put_existing"], &out["after_put"]), (&json!(200), &json!("second")), "{out}");
    assert_eq!((&out["multipart_existing"], &out["after_multipart"]), (&json!(200), &json!("third")), "{out}");
}

const BOTO3_RACE: &str = r#"
import json, os, sys, threading
import boto3, botocore
from botocore.config import Config
bucket, writers, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
clients = [boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"], config=Config(retries={"max_attempts": 1}))
           for _ in range(writers)]
winners = []
for r in range(rounds):
    barrier = threading.Barrier(writers)
    won, refused = [], []
    def go(i):
        barrier.wait()
        try:
            clients[i].put_object(Bucket=bucket, Key=f"race/{r}", Body=str(i).encode(), IfNoneMatch="*")
            won.append(i)
        except botocore.exceptions.ClientError as e:
            refused.append(e.response["ResponseMetadata"]["HTTPStatusCode"])
    threads = [threading.Thread(target=go, args=(i,)) for i in range(writers)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    stored = clients[0].get_object(Bucket=bucket, Key=f"race/{r}")["Body"].read().decode()
    winners.append({"won": won, "refused": sorted(set(refused)), "stored": stored})
print(json.dumps(winners))
"#;

#[test]
fn racing_creates_of_one_key_leave_exactly_one_winner() {
    let Some(s3) = s3() else { return };
    let rounds = run_python(&s3, BOTO3_RACE, &[s3.bucket(), "8", "40"]);
    for (r, round) in rounds.as_array().unwrap().iter().enumerate() {
        let won = round["won"].as_array().unwrap();
        assert_eq!(won.len(), 1, "round {r}: {round}");
        assert_eq!(round["refused"], json!([412]), "round {r}: {round}");
        assert_eq!(round["stored"], json!(won[0].to_string()), "round {r}: the winner's body is stored: {round}");
    }
}

const DELTA_RS_RACE: &str = r#"
import json, os, sys, threading
import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, write_deltalake
url, writers = sys.argv[1], int(sys.argv[2])
# What delta-rs needs for a plain-HTTP S3 endpoint; no lock provider, no unsafe rename:
# it commits with a conditional put (If-None-Match) by default.
opts = {k: os.environ[k] for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                   "AWS_REGION", "AWS_ALLOW_HTTP")}
def batch(w):
    return pa.table({"writer": pa.array([w], pa.int64())})
write_deltalake(url, batch(-1), storage_options=opts)
out = {}
for name, retries in (("no_retry", 0), ("retry", None)):
    # Every writer holds a snapshot of the same version, so all try to create the next one.
    tables = [DeltaTable(url, storage_options=opts) for _ in range(writers)]
    start = tables[0].version()
    barrier = threading.Barrier(writers)
    outcome = [None] * writers
    def go(i):
        barrier.wait()
        try:
            write_deltalake(tables[i], batch(i), mode="append",
                            commit_properties=CommitProperties(max_commit_retries=retries))
            outcome[i] = "ok"
        except Exception as e:
            outcome[i] = type(e).__name__
    threads = [threading.Thread(target=go, args=(i,)) for i in range(writers)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    dt = DeltaTable(url, storage_options=opts)
    out[name] = {"from": start, "version": dt.version(), "outcome": outcome,
                 "rows": sorted(dt.to_pyarrow_table().column("writer").to_pylist())}
print(json.dumps(out))
# delta-rs can abort at interpreter exit ("terminate called without an active exception"): leave at once.
os._exit(0)
"#;

#[test]
fn delta_rs_writers_racing_for_one_log_version_leave_exactly_one_winner() {
    let Some(s3) = s3() else { return };
    let writers = 4;
    let out = run_python(&s3, DELTA_RS_RACE, &[&s3.url("race"), &writers.to_string()]);

    // Without retries: one writer creates version 1, every other one fails and writes nothing.
    let once = &out["no_retry"];
    assert_eq!((once["from"].as_i64(), once["version"].as_i64()), (Some(0), Some(1)), "{once}");
    let outcome: Vec<&str> = once["outcome"].as_array().unwrap().iter().map(|o| o.as_str().unwrap()).collect();
    let winners: Vec<usize> = (0..writers).filter(|&i| outcome[i] == "ok").collect();
    assert_eq!(winners.len(), 1, "{once}");
    assert!(outcome.iter().filter(|&&o| o != "ok").all(|&o| o == "CommitFailedError"), "{once}");
    assert_eq!(once["rows"], json!([-1, winners[0]]), "{once}");
    // Each log version was created by one PUT; every other PUT of it was refused with 412
    // (a loser that saw the new version before its PUT gives up without one).
    let mut refused = 0;
    for version in 1..=1 + writers {
        let key = format!("race/_delta_log/{version:020}.json");
        let puts: Vec<u16> =
            logged_requests(&s3, &key).into_iter().filter(|(m, _)| m == "PUT").map(|(_, s)| s).collect();
        assert_eq!(puts.iter().filter(|&&s| s == 200).count(), 1, "{key}: {puts:?}");
        assert!(puts.iter().all(|&s| s == 200 || s == 412), "{key}: {puts:?}");
        refused += puts.iter().filter(|&&s| s == 412).count();
    }
    eprintln!("conditional puts of a log version refused with 412: {refused}");

    // With delta-rs's retries (appends never conflict): each writer's row lands once, one version each.
    let retried = &out["retry"];
    assert_eq!(retried["from"], 1, "{retried}");
    assert_eq!(retried["version"].as_i64(), Some(1 + writers as i64), "{retried}");
    assert!(retried["outcome"].as_array().unwrap().iter().all(|o| o == "ok"), "{retried}");
    let mut expected = vec![-1, winners[0] as i64];
    expected.extend(0..writers as i64);
    expected.sort();
    assert_eq!(retried["rows"], json!(expected), "{retried}");
}

/// Writes a CDF-enabled table with delta-rs to `s3://...`: v0 three rows,
/// v1 updates id 2, v2 deletes id 3.
const DELTA_RS_WRITE: &str = r#"
import json, os, sys
import pyarrow as pa
from deltalake import DeltaTable, write_deltalake
url = sys.argv[1]
opts = {k: os.environ[k] for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                   "AWS_REGION", "AWS_ALLOW_HTTP")}
rows = pa.table({"id": pa.array([1, 2, 3], pa.int64()), "name": ["ann", "bob", "cy"]})
write_deltalake(url, rows, storage_options=opts, configuration={"delta.enableChangeDataFeed": "true"})
dt = DeltaTable(url, storage_options=opts)
dt.update({"name": "'bob-2'"}, predicate="id = 2")
dt.delete("id = 3")
print(json.dumps({"version": DeltaTable(url, storage_options=opts).version()}))
os._exit(0)
"#;

#[test]
fn spark_reads_a_delta_rs_table_on_s3_through_s3a() {
    let Some(s3) = s3() else { return };
    if require("disk space", tributary_testkit::ensure_space_for_heavy_tests("the Spark tests")).is_none() {
        return;
    }
    let Some(spark) = require("Spark verifier (pyspark + Delta and S3A jars; `make setup`)", SparkVerifier::shared())
    else {
        return;
    };
    let written = run_python(&s3, DELTA_RS_WRITE, &[&s3.url("orders")]);
    assert_eq!(written["version"], 2);

    spark.register_s3(&s3).unwrap();
    let url = s3.s3a_url("orders");
    let table = Path::new(&url);
    assert_eq!(spark.count(table).unwrap(), 2);
    let rows = spark.rows(table, &["id"]).unwrap();
    let names: Vec<(i64, &str)> =
        rows.iter().map(|r| (r["id"].as_i64().unwrap(), r["name"].as_str().unwrap())).collect();
    assert_eq!(names, [(1, "ann"), (2, "bob-2")]);
    let feed: Vec<(i64, i64, String)> = spark
        .cdf(table, 0, None, &["_commit_version", "id", "_change_type"])
        .unwrap()
        .iter()
        .map(|r| {
            let (v, id) = (r["_commit_version"].as_i64().unwrap(), r["id"].as_i64().unwrap());
            (v, id, r["_change_type"].as_str().unwrap().to_string())
        })
        .collect();
    assert_eq!(
        feed,
        [
            (0, 1, "insert".into()),
            (0, 2, "insert".into()),
            (0, 3, "insert".into()),
            (1, 2, "update_postimage".into()),
            (1, 2, "update_preimage".into()),
            (2, 3, "delete".into()),
        ]
    );
    assert_eq!(spark.count_at(table, 0).unwrap(), 3, "time travel on s3a");
    let reads = s3.request_counts().unwrap();
    assert!(reads.get("GET").copied().unwrap_or(0) > 0, "Spark read through the test server: {reads:?}");
}

#[test]
fn a_python_without_moto_is_a_start_error_that_names_the_setup() {
    let options = S3Options { python: "/nonexistent/tributary/python".into(), ..S3Options::default() };
    let err = S3Server::start_with(options).unwrap_err().to_string();
    assert!(err.contains("/nonexistent/tributary/python") && err.contains("make setup"), "{err}");

    // A Python without moto (a fresh venv): the launcher exits and the error says what to install.
    let dir = tempfile::tempdir().unwrap();
    let venv = dir.path().join("venv");
    let made = Command::new("python3").args(["-m", "venv", "--without-pip"]).arg(&venv).status();
    if !made.is_ok_and(|s| s.success()) {
        return eprintln!("python3 -m venv is not available here; the second half is not checked");
    }
    let options = S3Options { python: venv.join("bin/python"), ..S3Options::default() };
    let err = S3Server::start_with(options).unwrap_err().to_string();
    assert!(err.contains("exited during startup") && err.contains("No module named 'moto'"), "{err}");
    assert!(err.contains("make setup") && err.contains("requirements-test.txt"), "{err}");
}
