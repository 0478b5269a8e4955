//! Real services for Tributary's tests, started on free loopback ports in
//! temp dirs, plus isolated per-test names and directories.
//!
//! A service that cannot start makes the test skip loudly on a laptop and
//! fail under `CI=true` (see [`require`]).

pub mod alertmanager;
pub mod disk;
mod http;
pub mod isolation;
pub mod mariadb;
pub mod ports;
pub mod postgres;
pub mod process;
pub mod prometheus;
pub mod s3;
pub mod spark;
pub mod tls;
pub mod webhook;

pub use alertmanager::{Alert, AlertManager, AlertManagerClient, AlertManagerOptions};
pub use disk::{ensure_free_space, ensure_space_for_heavy_tests, repo_root};
pub use isolation::{test_root, unique_name, TestDatabase, TestDir, TEST_ROOT_MARKER};
pub use mariadb::{MariaDb, MariaDbOptions};
pub use postgres::{PgDatabase, Postgres, PostgresOptions};
pub use prometheus::{Prometheus, PrometheusOptions};
pub use s3::{S3Options, S3Server};
pub use spark::{venv_python, SparkField, SparkVerifier, SparkVerifierOptions};
pub use tls::{CertPair, ServerCerts, ServerTls, TestCa};
pub use webhook::{Notification, WebhookReceiver};

use std::fmt::Display;

/// True when running under CI (`CI=true`), where a missing service is a failure.
pub fn in_ci() -> bool {
    std::env::var("CI").map(|v| v == "true" || v == "1").unwrap_or(false)
}

/// Unwraps a service handle; on error fails the test under CI, or prints a
/// loud skip notice and returns `None` on a laptop.
pub fn require<T, E: Display>(service: &str, started: Result<T, E>) -> Option<T> {
    match started {
        Ok(handle) => Some(handle),
        Err(e) if in_ci() => panic!("{service} could not start under CI=true: {e}"),
        Err(e) => {
            eprintln!("\n!!!!! SKIPPED: {service} could not start: {e}\n!!!!! (under CI=true this fails the test)\n");
            None
        }
    }
}

/// Errors starting or talking to a test service.
#[derive(Debug, thiserror::Error)]
pub enum TestKitError {
    #[error("{binary} not found on PATH or in /usr/sbin; install it (`make setup` installs {package})")]
    MissingBinary { binary: String, package: String },
    #[error("{what} failed: {detail}")]
    Start { what: String, detail: String },
    #[error("{service} not ready after {seconds} s; log tail:\n{log}")]
    NotReady { service: String, seconds: u64, log: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("MySQL query failed: {0}")]
    Sql(#[from] mysql_async::Error),
}
