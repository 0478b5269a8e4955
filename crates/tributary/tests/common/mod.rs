//! Shared helpers of the binary's integration tests: a CDC user on a real
//! MariaDB, a pipeline config in a per-test directory, the `tributary`
//! process, and the independent Delta reader (delta-rs Python bindings).
#![allow(dead_code)]

pub mod alltypes;
pub mod chunked_copy;
pub mod http;
pub mod large_txn;
pub mod pg;
pub mod pg_types;
pub mod recopy;
pub mod s3;
pub mod workload;

use serde_json::Value as Json;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use tributary_testkit::{require, MariaDb, TestDir};

pub const CDC_USER: &str = "cdc";
pub const CDC_PASSWORD: &str = "cdc-secret-pw";
pub const APP: &str = "itest";
/// How long a test waits for the pipeline to reach a state.
pub const CATCH_UP: Duration = Duration::from_secs(90);

/// A MariaDB with a CDC user, or `None` when it cannot start (skipped loudly; fails under CI).
/// True when the binary under test carries the test failpoints (cargo
/// feature `failpoints`, set by `make test`); otherwise the test that needs
/// them skips loudly, and fails under `CI=true`.
#[allow(dead_code)]
pub fn failpoints() -> bool {
    if cfg!(feature = "failpoints") {
        return true;
    }
    let why = "the tributary binary was built without the test failpoints; run with `--features tributary/failpoints` (as `make test` does)";
    assert!(!tributary_testkit::in_ci(), "{why}");
    eprintln!("\n!!!!! SKIPPED: {why}\n");
    false
}

pub fn mariadb() -> Option<MariaDb> {
    let server = require("MariaDB", MariaDb::start())?;
    server
        .create_user(CDC_USER, CDC_PASSWORD, &["REPLICATION SLAVE, REPLICATION CLIENT, SELECT ON *.*"])
        .expect("create the CDC user");
    Some(server)
}

/// The Python interpreter that has `deltalake` (set by `make test`).
pub fn python() -> Option<PathBuf> {
    let python = PathBuf::from(std::env::var("TRIBUTARY_PYTHON").unwrap_or_else(|_| "python3".into()));
    let ok = Command::new(&python).args(["-c", "import deltalake"]).output().map(|o| o.status.success());
    require(
        "the Python deltalake reader (run `make setup`)",
        if ok.unwrap_or(false) { Ok(python) } else { Err("import deltalake failed") },
    )
}

/// Writes a pipeline config into `dir` and returns its path.
pub fn write_config(dir: &Path, server: &MariaDb, include: &str, extra_pipeline: &str) -> PathBuf {
    let text = format!(
        r#"
[pipeline]
name = "{APP}"
batch_max_wait_ms = 200
{extra_pipeline}

[source.mysql]
host = "127.0.0.1"
port = {port}
user = "{CDC_USER}"
password = "{CDC_PASSWORD}"
server_id = {server_id}
include = ["{include}"]

[sink.delta]
root = "{root}"
checkpoint_interval = 5

[metrics]
listen = "127.0.0.1:0"
"#,
        port = server.port(),
        server_id = 1000 + (std::process::id() % 1000),
        root = dir.join("lake").display(),
    );
    let path = dir.join("pipeline.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A running `tributary run`; killed on Drop if still running.
pub struct Pipeline {
    child: Child,
    log: PathBuf,
}

impl Pipeline {
    pub fn start(config: &Path) -> Pipeline {
        Self::start_with_env(config, &[])
    }

    /// Like [`Pipeline::start`], with extra environment variables (e.g. a test failpoint).
    pub fn start_with_env(config: &Path, env: &[(&str, &Path)]) -> Pipeline {
        let log = config.with_file_name(format!("pipeline-{}.log", uuid_like()));
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_tributary"))
            .args(["run", "--config"])
            .arg(config)
            .env("TRIBUTARY_LOG", "info,tributary=trace")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("spawn tributary");
        Pipeline { child, log }
    }

    /// SIGTERM, then the exit status (must come within 60 s).
    pub fn stop(mut self) -> std::process::ExitStatus {
        Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        self.wait_exit(Duration::from_secs(60))
            .unwrap_or_else(|| panic!("no exit after SIGTERM; log:\n{}", self.log_text()))
    }

    /// kill -9.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// The process's peak resident set so far (`VmHWM` of /proc/<pid>/status), in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc/<pid>/status")
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Panics with the log if the process has exited.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("pipeline exited early ({status}); log:\n{}", self.log_text());
        }
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!("pipeline log {}:\n{}", self.log.display(), self.log_text());
        }
    }
}

fn uuid_like() -> String {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed).to_string()
}

/// Runs `tributary <args>` to completion.
pub fn tributary(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tributary")).args(args).output().expect("run tributary")
}

/// The binlog position the server will write next, as a txn version.
pub fn master_version(server: &MariaDb) -> i64 {
    let out = server.exec("SHOW MASTER STATUS").unwrap();
    let mut cols = out.split('\t');
    let file = cols.next().unwrap().to_string();
    let offset: u64 = cols.next().unwrap().trim().parse().unwrap();
    tributary_core::SourcePosition::MySql(tributary_core::MySqlPosition::new(file, offset)).to_version().unwrap()
}

/// Path of the Delta table of `db.table` under the test's lake.
pub fn table_path(dir: &Path, db: &str, table: &str) -> PathBuf {
    dir.join("lake").join(db).join(table)
}

/// Writes a config capturing `include` into `dir`'s lake, starts `tributary
/// run` and waits until the table `db.table` holds the server's current
/// position (its copy done): the config, the table's path and the pipeline.
#[allow(dead_code)]
pub fn start_copied(
    dir: &Path,
    server: &MariaDb,
    include: &str,
    db: &str,
    table: &str,
) -> (PathBuf, PathBuf, Pipeline) {
    let config = write_config(dir, server, include, "");
    let path = table_path(dir, db, table);
    let mut pipeline = Pipeline::start(&config);
    wait_committed(&mut pipeline, &path, master_version(server));
    (config, path, pipeline)
}

/// Waits until the table's committed position reaches `version`.
pub fn wait_committed(pipeline: &mut Pipeline, path: &Path, version: i64) {
    wait_committed_as(pipeline, path, version, APP)
}

/// [`wait_committed`] for the pipeline named `app`.
pub fn wait_committed_as(pipeline: &mut Pipeline, path: &Path, version: i64, app: &str) {
    let start = Instant::now();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    loop {
        pipeline.assert_running();
        if tributary_delta::table_exists(path) {
            if let Ok(status) = rt.block_on(tributary_delta::table_status(path, app)) {
                if status.committed_version.is_some_and(|v| v >= version) {
                    return;
                }
            }
        }
        if start.elapsed() > CATCH_UP {
            panic!(
                "table {} did not reach version {version} in {CATCH_UP:?}; log:\n{}",
                path.display(),
                pipeline.log_text()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs the independent reader and parses its JSON.
pub fn read(python: &Path, args: &[&str]) -> Json {
    let script = tributary_testkit::repo_root().join("scripts/delta_reader.py");
    let out = Command::new(python).arg(script).args(args).output().expect("run delta_reader.py");
    assert!(out.status.success(), "delta_reader.py {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("reader JSON")
}

/// Current mirror rows (source columns only, metadata columns dropped).
pub fn mirror_rows(python: &Path, path: &Path) -> Vec<serde_json::Map<String, Json>> {
    let json = read(python, &["rows", path.to_str().unwrap()]);
    let mut rows = strip_meta(json["rows"].as_array().unwrap());
    rows.sort_by_key(|r| (r.get("id").and_then(Json::as_i64).unwrap_or(0), Json::Object(r.clone()).to_string()));
    rows
}

/// The change feed from `from` on: rows with `_change_type` and `_commit_version`.
pub fn change_feed(python: &Path, path: &Path, from: i64) -> Vec<serde_json::Map<String, Json>> {
    let json = read(python, &["cdf", path.to_str().unwrap(), &from.to_string()]);
    strip_meta(json["rows"].as_array().unwrap())
}

/// The `id` of every change-feed row of `change_type` (`insert`, `delete`, ...), in feed order.
pub fn feed_ids(feed: &[serde_json::Map<String, Json>], change_type: &str) -> Vec<i64> {
    feed.iter().filter(|r| r["_change_type"] == change_type).map(|r| r["id"].as_i64().unwrap()).collect()
}

fn strip_meta(rows: &[Json]) -> Vec<serde_json::Map<String, Json>> {
    rows.iter()
        .map(|r| {
            let mut m = r.as_object().unwrap().clone();
            m.retain(|k, _| !k.starts_with("_tributary") && k != "_commit_timestamp");
            m
        })
        .collect()
}

/// Source rows as the server prints them (`--batch`), one tab-separated line each.
pub fn source_lines(server: &MariaDb, sql: &str) -> Vec<String> {
    server.exec(sql).unwrap().lines().map(str::to_string).collect()
}

/// A fresh per-test directory.
pub fn test_dir() -> TestDir {
    TestDir::new().expect("create the test dir")
}

/// The shared Spark verifier (one JVM per test binary), or `None` when it
/// cannot start (skipped loudly; fails under CI); `what` names the tests.
pub fn spark(what: &str) -> Option<&'static tributary_testkit::SparkVerifier> {
    require("disk space", tributary_testkit::ensure_space_for_heavy_tests(what))?;
    require("Spark verifier (pyspark + Delta jars; `make setup`)", tributary_testkit::SparkVerifier::shared())
}

/// Mirror rows as tab-joined `columns`, sorted by id (NULL as `null`, a
/// column the table lacks as `<missing>`).
pub fn mirror_lines(python: &Path, path: &Path, columns: &[&str]) -> Vec<String> {
    mirror_rows(python, path)
        .iter()
        .map(|r| {
            columns
                .iter()
                .map(|c| match r.get(*c) {
                    Some(Json::String(s)) => s.clone(),
                    Some(v) => v.to_string(),
                    None => "<missing>".into(),
                })
                .collect::<Vec<_>>()
                .join("\t")
        })
        .collect()
}

/// `tributary validate --json --chunk-rows 7 <extra>`: exit code, parsed
/// stdout (Null when not JSON) and stderr.
pub fn validate_json(config: &Path, extra: &[&str]) -> (i32, Json, String) {
    let mut args = vec!["validate", "--config", config.to_str().unwrap(), "--json", "--chunk-rows", "7"];
    args.extend_from_slice(extra);
    let out = tributary(&args);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let json = serde_json::from_str(&stdout).unwrap_or(Json::Null);
    (out.status.code().unwrap_or(-1), json, String::from_utf8_lossy(&out.stderr).to_string())
}

/// An MD5 per stored row of the mirror's `id, v, w` columns (delta-rs), one
/// `id<TAB>md5` line per row sorted by id, rendered the way MySQL's
/// `CONCAT_WS('|', id, v, w)` and PostgreSQL's `concat_ws` render them (NULLs
/// skipped), so the lines compare with the source's.
#[allow(dead_code)]
pub fn mirror_checksums(python: &Path, path: &Path) -> Vec<String> {
    let script = r#"
import hashlib, os, sys
import pyarrow as pa
from deltalake import DeltaTable, QueryBuilder
# The DataFusion scan applies deletion vectors (to_pyarrow_table refuses them).
scan = QueryBuilder().register("t", DeltaTable(sys.argv[1])).execute("SELECT id, v, w FROM t")
t = pa.RecordBatchReader.from_stream(scan).read_all().to_pylist()
t.sort(key=lambda r: r["id"])
for r in t:
    parts = [str(r["id"])] + [str(x) for x in (r["v"], r["w"]) if x is not None]
    print(f'{r["id"]}\t' + hashlib.md5("|".join(parts).encode()).hexdigest())
sys.stdout.flush()
# delta-rs can abort at interpreter exit ("terminate called without an active exception"): leave at once.
os._exit(0)
"#;
    let out = Command::new(python).args(["-c", script]).arg(path).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().lines().map(str::to_string).collect()
}

/// Runs `tributary <command> --config <config>` expecting a failure: it must
/// exit non-zero with exactly one `error:` line and no other error or warning
/// line; returns that line.
#[allow(dead_code)]
pub fn fails_with_one_line(command: &str, config: &Path) -> String {
    let out = tributary(&[command, "--config", config.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "`tributary {command}` must exit non-zero; stderr:\n{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "`tributary {command}`: exactly one error line; stderr:\n{stderr}");
    let noisy: Vec<&str> = stderr.lines().filter(|l| l.contains("ERROR") || l.contains("WARN")).collect();
    assert!(noisy.is_empty(), "`tributary {command}`: no other error or warning lines; stderr:\n{stderr}");
    eprintln!("tributary {command}: {}", errors[0]);
    errors[0].to_string()
}

/// `tributary run` and `tributary check` both fail with the same one line,
/// which `expect` accepts; returns it.
#[allow(dead_code)]
pub fn run_and_check_fail(config: &Path, expect: impl Fn(&str) -> bool) -> String {
    let run = fails_with_one_line("run", config);
    assert!(expect(&run), "run: {run}");
    let check = fails_with_one_line("check", config);
    assert_eq!(check, run, "check says what run says");
    run
}

/// `tributary check --config <config>` must pass; returns its stdout.
#[allow(dead_code)]
pub fn check_passes(config: &Path) -> String {
    let out = tributary(&["check", "--config", config.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "check failed: {}{stdout}", String::from_utf8_lossy(&out.stderr));
    stdout
}

/// Sets the source's `host` and appends `lines` (e.g. `ssl_mode = "verify-full"`)
/// to the source section of a config written by [`write_config`] or
/// `pg::write_pg_config` (they go right after its `include` line).
#[allow(dead_code)]
pub fn set_source(config: &Path, host: &str, lines: &[String]) {
    let text = std::fs::read_to_string(config).unwrap();
    let text = text.replacen("host = \"127.0.0.1\"", &format!("host = \"{host}\""), 1);
    let start = text.find("include = [").expect("an include line");
    let end = start + text[start..].find('\n').unwrap();
    let text = format!("{}\n{}{}", &text[..end], lines.join("\n"), &text[end..]);
    std::fs::write(config, text).unwrap();
}
