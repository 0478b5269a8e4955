//! A real S3 server on loopback: moto's S3 (PyPI `moto`, installed in the test
//! venv by `make setup`), started by scripts/s3_server.py on a port the kernel
//! picks, with one bucket `tributary-<8 hex>` made for the test. It keeps
//! everything in memory and accepts any access key (or, with
//! [`S3Options::require_credentials`], only the test kit's); `If-None-Match: *` on
//! PutObject and CompleteMultipartUpload answers 412 for an existing key, and
//! the script runs mutating requests one at a time, so such a create is atomic
//! as on S3 (what Delta log commits rely on). Clients get the endpoint, keys and
//! region from [`S3Server::env`] (the AWS SDKs, delta-rs) or from
//! [`crate::SparkVerifier::register_s3`] (Spark through `s3a://`).

use crate::alertmanager::read_tail;
use crate::http;
use crate::process::ServiceProcess;
use crate::spark::venv_python;
use crate::TestKitError;
use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The region clients are given (moto's default; a bucket there needs no location constraint).
pub const REGION: &str = "us-east-1";
/// The access key clients are given (moto accepts any unless [`S3Options::require_credentials`]).
pub const ACCESS_KEY_ID: &str = "tributary-test";
/// The secret key clients are given (moto accepts any unless [`S3Options::require_credentials`]).
pub const SECRET_ACCESS_KEY: &str = "tributary-test-secret";
/// How long the server may take to listen (importing moto takes ~1 s).
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// The bound on each request the test kit itself sends.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

/// How to start the server.
#[derive(Debug, Clone)]
pub struct S3Options {
    /// A Python with moto (`$TRIBUTARY_PYTHON`, else the venv of `make setup`).
    pub python: PathBuf,
    /// The launcher script (the repo's scripts/s3_server.py).
    pub script: PathBuf,
    /// The bucket to create; `None`: a unique `tributary-<8 hex>`.
    pub bucket: Option<String>,
    /// `false` emulates an S3-compatible store without conditional writes:
    /// `If-None-Match` / `If-Match` are dropped, so a create silently overwrites.
    pub conditional_writes: bool,
    /// `true`: every request after the bucket's creation must be signed with
    /// [`ACCESS_KEY_ID`] / [`SECRET_ACCESS_KEY`] (moto's IAM checks the
    /// signature as S3 does); `false`: any key is accepted.
    pub require_credentials: bool,
    pub ready_timeout: Duration,
}

impl Default for S3Options {
    fn default() -> Self {
        S3Options {
            python: venv_python(),
            script: crate::disk::repo_root().join("scripts/s3_server.py"),
            bucket: None,
            conditional_writes: true,
            require_credentials: false,
            ready_timeout: READY_TIMEOUT,
        }
    }
}

/// A unique bucket name `tributary-<8 hex>` (S3 names allow no underscore).
pub fn unique_bucket() -> String {
    format!("tributary-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

/// A running S3 server on 127.0.0.1 with one bucket.
pub struct S3Server {
    // Field order matters: the process stops before its directory is removed.
    process: ServiceProcess,
    dir: tempfile::TempDir,
    port: u16,
    bucket: String,
}

impl S3Server {
    /// Starts the server with the venv's moto and creates a unique bucket.
    pub fn start() -> Result<Self, TestKitError> {
        Self::start_with(S3Options::default())
    }

    /// Starts the server with `options`: waits until it listens, then creates the bucket.
    pub fn start_with(options: S3Options) -> Result<Self, TestKitError> {
        if options.python.components().count() > 1 && !options.python.is_file() {
            return Err(TestKitError::Start {
                what: "S3 server (moto)".into(),
                detail: format!(
                    "no Python at {}; `make setup` creates the venv with moto (scripts/requirements-test.txt), \
                     or set TRIBUTARY_PYTHON",
                    options.python.display()
                ),
            });
        }
        let dir = tempfile::Builder::new()
            .prefix("tributary-s3-")
            .tempdir()
            .map_err(|source| TestKitError::Io { context: "create the S3 server temp dir".into(), source })?;
        let log = dir.path().join("s3-server.log");
        let mut cmd = Command::new(&options.python);
        cmd.arg(&options.script).args(["--host", "127.0.0.1", "--port", "0"]).current_dir(dir.path());
        if !options.conditional_writes {
            cmd.arg("--ignore-conditional-writes");
        }
        if options.require_credentials {
            cmd.args(["--require-credentials", &format!("{ACCESS_KEY_ID}:{SECRET_ACCESS_KEY}")]);
        }
        let mut process = ServiceProcess::spawn("S3 server (moto)", cmd, &log, dir.path())?;
        let port = wait_listening(&mut process, &log, options.ready_timeout)?;
        let server = S3Server { process, dir, port, bucket: options.bucket.unwrap_or_else(unique_bucket) };
        server.create_bucket(&server.bucket)?;
        Ok(server)
    }

    /// The port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:<port>` (path-style addressing: `<endpoint>/<bucket>/<key>`).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The bucket made for this test.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The region clients use ([`REGION`]).
    pub fn region(&self) -> &'static str {
        REGION
    }

    /// The access key id clients use ([`ACCESS_KEY_ID`]).
    pub fn access_key_id(&self) -> &'static str {
        ACCESS_KEY_ID
    }

    /// The secret access key clients use ([`SECRET_ACCESS_KEY`]).
    pub fn secret_access_key(&self) -> &'static str {
        SECRET_ACCESS_KEY
    }

    /// `s3://<bucket>/<key>`: a table root as Tributary and delta-rs name it.
    pub fn url(&self, key: &str) -> String {
        format!("s3://{}/{}", self.bucket, key.trim_start_matches('/'))
    }

    /// `s3a://<bucket>/<key>`: the same place as Spark (Hadoop S3A) names it.
    pub fn s3a_url(&self, key: &str) -> String {
        format!("s3a://{}/{}", self.bucket, key.trim_start_matches('/'))
    }

    /// The environment an S3 client needs: the AWS SDKs read `AWS_ENDPOINT_URL`,
    /// the keys and the region (`AWS_REGION`; boto3 `AWS_DEFAULT_REGION`); delta-rs (object_store) also needs
    /// `AWS_ALLOW_HTTP=true` for a plain-HTTP endpoint. The same pairs serve as
    /// delta-rs `storage_options`.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY.into()),
            ("AWS_REGION", REGION.into()),
            ("AWS_DEFAULT_REGION", REGION.into()),
            ("AWS_ALLOW_HTTP", "true".into()),
        ]
    }

    /// [`S3Server::env`] as a map (delta-rs `storage_options`).
    pub fn storage_options(&self) -> BTreeMap<String, String> {
        self.env().into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }

    /// The options of a Tributary `[sink.delta.storage]` section (object_store's
    /// names without `aws_`) that reach this server.
    pub fn sink_storage_options(&self) -> BTreeMap<String, String> {
        [
            ("endpoint", self.endpoint()),
            ("region", REGION.to_string()),
            ("access_key_id", ACCESS_KEY_ID.to_string()),
            ("secret_access_key", SECRET_ACCESS_KEY.to_string()),
            ("allow_http", "true".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// Sets [`S3Server::env`] on `command`, so a child process talks to this server.
    pub fn apply_env<'c>(&self, command: &'c mut Command) -> &'c mut Command {
        command.envs(self.env())
    }

    /// Creates another bucket (`CreateBucket`, path style).
    pub fn create_bucket(&self, name: &str) -> Result<(), TestKitError> {
        let r = self.send("PUT", &format!("/{name}"))?;
        if r.status != 200 {
            return Err(TestKitError::Start {
                what: format!("create bucket {name} on the S3 server {}", self.endpoint()),
                detail: format!("HTTP {}: {}", r.status, r.body),
            });
        }
        Ok(())
    }

    /// The requests served so far by HTTP method (`GET`, `PUT`, `POST`,
    /// `DELETE`, `HEAD`), the bucket creation included, and `GET_BYTES`: the
    /// bytes the GETs sent.
    pub fn request_counts(&self) -> Result<BTreeMap<String, u64>, TestKitError> {
        let r = self.send("GET", "/_tributary/requests")?;
        let counts: Json = serde_json::from_str(&r.body).map_err(|e| TestKitError::Start {
            what: format!("read the request counts of the S3 server {}", self.endpoint()),
            detail: format!("HTTP {}: {e}: {}", r.status, r.body),
        })?;
        Ok(counts
            .as_object()
            .into_iter()
            .flatten()
            .map(|(method, n)| (method.clone(), n.as_u64().unwrap_or(0)))
            .collect())
    }

    /// The server's log (one line per request).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("s3-server.log")
    }

    /// The OS process id.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    fn send(&self, method: &str, path: &str) -> Result<http::HttpResponse, TestKitError> {
        http::request(&format!("127.0.0.1:{}", self.port), method, path, None, CLIENT_TIMEOUT).map_err(|e| {
            TestKitError::Start {
                what: format!("S3 server {} {method} {path}", self.endpoint()),
                detail: format!("{e}; log tail:\n{}", read_tail(&self.log_path(), 20)),
            }
        })
    }
}

impl std::fmt::Debug for S3Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "S3Server({}, bucket {}, pid {})", self.endpoint(), self.bucket, self.process.pid())
    }
}

/// Waits for the script's `{"ready": true, "port": N}` line; fails early with
/// the log tail when the process exits (the script names `make setup` when moto
/// is missing).
fn wait_listening(process: &mut ServiceProcess, log: &Path, timeout: Duration) -> Result<u16, TestKitError> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let port = text
            .lines()
            .filter_map(|line| serde_json::from_str::<Json>(line).ok())
            .find(|j| j["ready"] == true)
            .and_then(|j| j["port"].as_u64())
            .and_then(|p| u16::try_from(p).ok());
        if let Some(port) = port {
            return Ok(port);
        }
        if !process.is_running() {
            return Err(TestKitError::Start {
                what: "S3 server (moto)".into(),
                detail: format!("exited during startup; log tail:\n{}", read_tail(log, 20)),
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(TestKitError::NotReady {
        service: "S3 server (moto)".into(),
        seconds: start.elapsed().as_secs(),
        log: read_tail(log, 20),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names_are_unique_and_valid_for_s3() {
        let (a, b) = (unique_bucket(), unique_bucket());
        assert_ne!(a, b);
        assert!(a.len() <= 63 && a.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'), "{a}");
    }
}
