//! Spark 3.5 + Delta 3.x as an independent reader of Delta tables: one
//! long-lived Python process (scripts/spark_verifier.py, pyspark `local[1]`,
//! one JVM) per test binary, shared by its tests through [`SparkVerifier::shared`],
//! since a JVM start costs seconds. JSON lines over stdin/stdout; Spark's logs go
//! to a file whose tail is in every error once the process has died.
//!
//! Tables on the test S3 server are read through `s3a://` (hadoop-aws and the
//! AWS SDK bundle jars) once their bucket is registered with
//! [`SparkVerifier::register_s3`]; every method taking a path then also takes
//! an `s3a://<bucket>/<key>` URL.

use crate::process::{find_binary, spawn_watchdog};
use crate::TestKitError;
use serde_json::{json, Value as Json};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// A row as Spark returned it, values in the canonical JSON form of
/// scripts/spark_verifier.py (decimals as strings, timestamps ISO-8601, binary hex).
pub type Row = serde_json::Map<String, Json>;

/// Where `make setup` puts things.
pub const DEFAULT_CACHE_DIR: &str = "/var/cache/tributary";
/// How long the JVM may take to start.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(180);
/// How long one request may take.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(300);

/// A column of a Spark schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SparkField {
    pub name: String,
    /// Spark's simple type string: `bigint`, `decimal(10,2)`, `timestamp`, ...
    pub data_type: String,
    pub nullable: bool,
}

/// How to start a verifier.
#[derive(Debug, Clone)]
pub struct SparkVerifierOptions {
    /// A Python with pyspark 3.5 (`$TRIBUTARY_PYTHON`, else the venv of `make setup`).
    pub python: PathBuf,
    /// The verifier script.
    pub script: PathBuf,
    /// The jars: Delta (`delta-spark_2.12`, `delta-storage`) and S3A
    /// (`hadoop-aws`, `aws-java-sdk-bundle`).
    pub jars: Vec<PathBuf>,
    /// A spark-defaults.conf applied first (the repo's config/spark/spark-defaults.conf).
    pub conf: Option<PathBuf>,
    pub startup_timeout: Duration,
    pub call_timeout: Duration,
}

impl SparkVerifierOptions {
    /// The setup of `make setup`: venv Python, cached jars, repo script and conf.
    pub fn from_env() -> Result<Self, TestKitError> {
        let cache = cache_dir();
        let python = venv_python();
        let jars_dir = std::env::var_os("TRIBUTARY_JARS_DIR").map(PathBuf::from).unwrap_or_else(|| cache.join("jars"));
        let root = crate::disk::repo_root();
        let conf = root.join("config/spark/spark-defaults.conf");
        Ok(SparkVerifierOptions {
            python,
            script: root.join("scripts/spark_verifier.py"),
            jars: delta_jars(&jars_dir)?,
            conf: conf.is_file().then_some(conf),
            startup_timeout: STARTUP_TIMEOUT,
            call_timeout: CALL_TIMEOUT,
        })
    }
}

/// `$TRIBUTARY_CACHE_DIR`, else [`DEFAULT_CACHE_DIR`].
pub fn cache_dir() -> PathBuf {
    std::env::var_os("TRIBUTARY_CACHE_DIR").map(PathBuf::from).unwrap_or(DEFAULT_CACHE_DIR.into())
}

/// The Python of the test venv (pyspark, deltalake): `$TRIBUTARY_PYTHON`,
/// else `<cache>/venv/bin/python`, else `python3`.
pub fn venv_python() -> PathBuf {
    match std::env::var_os("TRIBUTARY_PYTHON") {
        Some(p) => PathBuf::from(p),
        None if cache_dir().join("venv/bin/python").is_file() => cache_dir().join("venv/bin/python"),
        None => PathBuf::from("python3"),
    }
}

/// The newest `delta-spark_2.12-*.jar`, `delta-storage-*.jar`, `hadoop-aws-*.jar`
/// and `aws-java-sdk-bundle-*.jar` in `dir` (all fetched by scripts/fetch_delta_jars.sh).
pub fn delta_jars(dir: &Path) -> Result<Vec<PathBuf>, TestKitError> {
    let names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.ends_with(".jar"))
        .collect();
    let mut jars = Vec::new();
    for prefix in ["delta-spark_2.12-", "delta-storage-", "hadoop-aws-", "aws-java-sdk-bundle-"] {
        let mut found: Vec<&String> = names.iter().filter(|n| n.starts_with(prefix)).collect();
        found.sort();
        match found.pop() {
            Some(name) => jars.push(dir.join(name)),
            None => {
                return Err(TestKitError::Start {
                    what: "find the Delta and S3A jars".into(),
                    detail: format!(
                        "no {prefix}*.jar in {}; run `bash scripts/fetch_delta_jars.sh` (or `make setup`), \
                         or set TRIBUTARY_JARS_DIR",
                        dir.display()
                    ),
                })
            }
        }
    }
    Ok(jars)
}

struct Inner {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    next_id: u64,
    dead: Option<String>,
}

/// A running verifier process (one JVM).
pub struct SparkVerifier {
    inner: Mutex<Inner>,
    stderr_log: PathBuf,
    pid: u32,
    spark_version: String,
    call_timeout: Duration,
    _dir: tempfile::TempDir,
}

static SHARED: OnceLock<Result<SparkVerifier, String>> = OnceLock::new();

impl SparkVerifier {
    /// The verifier of this test binary, started on first use with
    /// [`SparkVerifierOptions::from_env`]; a failed start is remembered so
    /// later tests fail fast with the same reason.
    pub fn shared() -> Result<&'static SparkVerifier, TestKitError> {
        let started = SHARED
            .get_or_init(|| SparkVerifierOptions::from_env().and_then(SparkVerifier::start).map_err(|e| e.to_string()));
        started.as_ref().map_err(|detail| TestKitError::Start { what: "Spark verifier".into(), detail: detail.clone() })
    }

    /// Starts a private verifier (tests normally use [`SparkVerifier::shared`]).
    pub fn start(options: SparkVerifierOptions) -> Result<SparkVerifier, TestKitError> {
        find_binary("java", "openjdk-17-jre-headless")?;
        let dir = tempfile::Builder::new()
            .prefix("tributary-spark-")
            .tempdir()
            .map_err(|source| TestKitError::Io { context: "create the Spark verifier temp dir".into(), source })?;
        let stderr_log = dir.path().join("spark-verifier.log");
        let log = std::fs::File::create(&stderr_log)
            .map_err(|source| TestKitError::Io { context: format!("create {}", stderr_log.display()), source })?;
        let jars = options.jars.iter().map(|j| j.display().to_string()).collect::<Vec<_>>().join(",");
        let mut cmd = Command::new(&options.python);
        cmd.arg(&options.script).arg("--jars").arg(jars).arg("--workdir").arg(dir.path());
        if let Some(conf) = &options.conf {
            cmd.arg("--conf").arg(conf);
        }
        let mut child = cmd
            .current_dir(dir.path())
            .env("TZ", "UTC")
            .env("SPARK_LOCAL_IP", "127.0.0.1")
            .env("PYSPARK_PYTHON", &options.python)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .map_err(|source| TestKitError::Io {
                context: format!("spawn {} {}", options.python.display(), options.script.display()),
                source,
            })?;
        let pid = child.id();
        spawn_watchdog(pid, dir.path());
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name(format!("spark-verifier-{pid}"))
            .spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            })
            .map_err(|source| TestKitError::Io { context: "spawn the verifier reader thread".into(), source })?;
        let stdin = child.stdin.take();
        let mut inner = Inner { child, stdin, lines, next_id: 1, dead: None };

        let start = Instant::now();
        let ready = match inner.lines.recv_timeout(options.startup_timeout) {
            Ok(line) => serde_json::from_str::<Json>(&line).unwrap_or(Json::Null),
            Err(RecvTimeoutError::Timeout) => {
                let _ = inner.child.kill();
                let _ = inner.child.wait();
                return Err(TestKitError::NotReady {
                    service: "Spark verifier".into(),
                    seconds: start.elapsed().as_secs(),
                    log: tail(&stderr_log, 30),
                });
            }
            Err(RecvTimeoutError::Disconnected) => {
                let status = inner.child.wait().map(|s| s.to_string()).unwrap_or_default();
                return Err(TestKitError::Start {
                    what: "Spark verifier".into(),
                    detail: format!(
                        "exited during startup ({status}); stderr tail ({}):\n{}",
                        stderr_log.display(),
                        tail(&stderr_log, 30)
                    ),
                });
            }
        };
        if ready["ready"] != true {
            let _ = inner.child.kill();
            let _ = inner.child.wait();
            return Err(TestKitError::Start {
                what: "Spark verifier".into(),
                detail: format!("unexpected first line {ready}; stderr tail:\n{}", tail(&stderr_log, 30)),
            });
        }
        tracing::info!("Spark verifier (pid {pid}) ready in {:?}", start.elapsed());
        Ok(SparkVerifier {
            inner: Mutex::new(inner),
            stderr_log,
            pid,
            spark_version: ready["spark_version"].as_str().unwrap_or("").to_string(),
            call_timeout: options.call_timeout,
            _dir: dir,
        })
    }

    /// The Spark version the verifier runs (3.5.x).
    pub fn spark_version(&self) -> &str {
        &self.spark_version
    }

    /// The Python process id (its JVM is a child of it).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The file holding Spark's and Python's stderr.
    pub fn log_path(&self) -> &Path {
        &self.stderr_log
    }

    /// Lets Spark read `s3a://<bucket>/...` of `s3`'s bucket: S3A settings for
    /// that bucket only (endpoint, path-style access, plain HTTP, its static keys
    /// through `SimpleAWSCredentialsProvider`, few retries). Each test's server
    /// has its own bucket name, so servers of earlier tests never get in the way.
    pub fn register_s3(&self, s3: &crate::S3Server) -> Result<(), TestKitError> {
        self.call(json!({
            "op": "register_s3",
            "bucket": s3.bucket(),
            "endpoint": s3.endpoint(),
            "region": s3.region(),
            "access_key": s3.access_key_id(),
            "secret_key": s3.secret_access_key(),
        }))
        .map(|_| ())
    }

    /// The schema of the Delta table at `path` (latest version).
    pub fn schema(&self, path: &Path) -> Result<Vec<SparkField>, TestKitError> {
        let fields = self.call(json!({"op": "schema", "path": path}))?;
        Ok(fields
            .as_array()
            .into_iter()
            .flatten()
            .map(|f| SparkField {
                name: f["name"].as_str().unwrap_or("").into(),
                data_type: f["type"].as_str().unwrap_or("").into(),
                nullable: f["nullable"].as_bool().unwrap_or(true),
            })
            .collect())
    }

    /// The row count (latest version).
    pub fn count(&self, path: &Path) -> Result<u64, TestKitError> {
        self.call(json!({"op": "count", "path": path})).map(|n| n.as_u64().unwrap_or(0))
    }

    /// The row count at `version` (time travel).
    pub fn count_at(&self, path: &Path, version: i64) -> Result<u64, TestKitError> {
        self.call(json!({"op": "count", "path": path, "version": version})).map(|n| n.as_u64().unwrap_or(0))
    }

    /// All rows (latest version), sorted by `order_by`.
    pub fn rows(&self, path: &Path, order_by: &[&str]) -> Result<Vec<Row>, TestKitError> {
        rows(self.call(json!({"op": "rows", "path": path, "order_by": order_by}))?)
    }

    /// All rows at `version` (time travel, `versionAsOf`), sorted by `order_by`.
    pub fn rows_at(&self, path: &Path, version: i64, order_by: &[&str]) -> Result<Vec<Row>, TestKitError> {
        rows(self.call(json!({"op": "rows", "path": path, "version": version, "order_by": order_by}))?)
    }

    /// `DESCRIBE HISTORY`, oldest version first.
    pub fn history(&self, path: &Path) -> Result<Vec<Row>, TestKitError> {
        rows(self.call(json!({"op": "history", "path": path}))?)
    }

    /// `readChangeFeed` from `start` to `end` (inclusive; `None`: latest), with
    /// `_change_type`, `_commit_version`, `_commit_timestamp`, sorted by
    /// `order_by` (default `_commit_version`).
    pub fn cdf(&self, path: &Path, start: i64, end: Option<i64>, order_by: &[&str]) -> Result<Vec<Row>, TestKitError> {
        rows(self.call(json!({"op": "cdf", "path": path, "start": start, "end": end, "order_by": order_by}))?)
    }

    /// The number of change feed rows from `start` to `end`.
    pub fn cdf_count(&self, path: &Path, start: i64, end: Option<i64>) -> Result<u64, TestKitError> {
        self.call(json!({"op": "cdf_count", "path": path, "start": start, "end": end})).map(|n| n.as_u64().unwrap_or(0))
    }

    /// Any Spark SQL query (e.g. on ``delta.`/path` ``).
    pub fn sql(&self, query: &str) -> Result<Vec<Row>, TestKitError> {
        rows(self.call(json!({"op": "sql", "query": query}))?)
    }

    /// Sends one request (an object with `op`) and returns its `result`.
    pub fn call(&self, mut request: Json) -> Result<Json, TestKitError> {
        let what = format!(
            "Spark verifier `{}`{}",
            request["op"].as_str().unwrap_or("?"),
            request["path"].as_str().map(|p| format!(" on {p}")).unwrap_or_default()
        );
        let fail = |detail: String| TestKitError::Start { what: what.clone(), detail };
        let mut inner = self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(dead) = &inner.dead {
            return Err(fail(dead.clone()));
        }
        let id = inner.next_id;
        inner.next_id += 1;
        request["id"] = id.into();
        let line = format!("{request}\n");
        let written = match inner.stdin.as_mut() {
            Some(stdin) => stdin.write_all(line.as_bytes()).and_then(|_| stdin.flush()),
            None => Err(std::io::Error::other("stdin closed")),
        };
        if written.is_err() {
            return Err(fail(self.mark_dead(&mut inner)));
        }
        let deadline = Instant::now() + self.call_timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match inner.lines.recv_timeout(left) {
                Ok(line) => {
                    let answer: Json =
                        serde_json::from_str(&line).map_err(|e| fail(format!("unreadable answer ({e}): {line}")))?;
                    if answer["id"] != id {
                        continue; // a late answer to a request that timed out
                    }
                    if answer["ok"] == true {
                        return Ok(answer["result"].clone());
                    }
                    return Err(fail(answer["error"].as_str().unwrap_or("unknown error").to_string()));
                }
                Err(RecvTimeoutError::Timeout) => {
                    return Err(fail(format!(
                        "no answer within {:?}; the verifier (pid {}) is still busy; its log: {}",
                        self.call_timeout,
                        self.pid,
                        self.stderr_log.display()
                    )))
                }
                Err(RecvTimeoutError::Disconnected) => return Err(fail(self.mark_dead(&mut inner))),
            }
        }
    }

    fn mark_dead(&self, inner: &mut Inner) -> String {
        let status = inner.child.wait().map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
        let message = format!(
            "the verifier process (pid {}) died ({status}); stderr tail ({}):\n{}",
            self.pid,
            self.stderr_log.display(),
            tail(&self.stderr_log, 30)
        );
        inner.dead = Some(message.clone());
        message
    }
}

impl Drop for SparkVerifier {
    fn drop(&mut self) {
        let inner = self.inner.get_mut().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(mut stdin) = inner.stdin.take() {
            let _ = stdin.write_all(b"{\"op\":\"exit\"}\n");
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if !matches!(inner.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = inner.child.kill();
        let _ = inner.child.wait();
    }
}

impl std::fmt::Debug for SparkVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SparkVerifier(pid {}, Spark {})", self.pid, self.spark_version)
    }
}

fn rows(result: Json) -> Result<Vec<Row>, TestKitError> {
    match result {
        Json::Array(items) => Ok(items
            .into_iter()
            .map(|r| match r {
                Json::Object(map) => map,
                other => Row::from_iter([("value".to_string(), other)]),
            })
            .collect()),
        other => {
            Err(TestKitError::Start { what: "Spark verifier".into(), detail: format!("expected rows, got {other}") })
        }
    }
}

fn tail(path: &Path, n: usize) -> String {
    crate::alertmanager::read_tail(path, n)
}
