//! A real Prometheus (Debian's `prometheus`) on a free loopback port in a
//! temp dir, with the repo's config (config/prometheus/prometheus.yml) and
//! its rule files. The config's loopback placeholders are rewritten:
//! `127.0.0.1:9090` (Prometheus itself) to the real port, and optionally
//! `127.0.0.1:9187` (Tributary's metrics) and `127.0.0.1:9093` (AlertManager).

use crate::alertmanager::{read_tail, wait_ready};
use crate::http::{self, encode_query};
use crate::ports::free_loopback_port;
use crate::process::{find_binary, ServiceProcess};
use crate::TestKitError;
use serde_json::Value as Json;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub use crate::disk::repo_root;

/// Placeholder of Prometheus's own address in the config.
pub const SELF_PLACEHOLDER: &str = "127.0.0.1:9090";
/// Placeholder of Tributary's metrics endpoint in the config.
pub const TRIBUTARY_PLACEHOLDER: &str = "127.0.0.1:9187";
/// Placeholder of AlertManager's address in the config.
pub const ALERTMANAGER_PLACEHOLDER: &str = "127.0.0.1:9093";
/// The bound on every API call.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

/// The repo's Prometheus config.
pub fn default_config() -> PathBuf {
    repo_root().join("config/prometheus/prometheus.yml")
}

/// What to start.
#[derive(Debug, Clone)]
pub struct PrometheusOptions {
    /// Config file; rule files are taken from the `rules/` dir beside it.
    pub config: PathBuf,
    /// Overrides every `scrape_interval`, `scrape_timeout` and `evaluation_interval`,
    /// and the alert resend delay (tests use ~1 s).
    pub interval: Option<Duration>,
    /// Replaces the Tributary metrics target `127.0.0.1:9187`.
    pub tributary_target: Option<String>,
    /// Replaces the AlertManager target `127.0.0.1:9093`.
    pub alertmanager: Option<String>,
    /// A port to try first (e.g. 9090 for `make infra-up`); another is used if it is taken.
    pub preferred_port: Option<u16>,
}

impl Default for PrometheusOptions {
    fn default() -> Self {
        PrometheusOptions {
            config: default_config(),
            interval: None,
            tributary_target: None,
            alertmanager: None,
            preferred_port: None,
        }
    }
}

/// A running Prometheus on 127.0.0.1.
pub struct Prometheus {
    // Field order matters: the process stops before its directory is removed.
    process: ServiceProcess,
    dir: tempfile::TempDir,
    port: u16,
}

impl Prometheus {
    /// Starts Prometheus with the repo config.
    pub fn start() -> Result<Self, TestKitError> {
        Self::start_with(PrometheusOptions::default())
    }

    /// Starts Prometheus with `options`. A config or rule error is reported
    /// with promtool's own message and the file.
    pub fn start_with(options: PrometheusOptions) -> Result<Self, TestKitError> {
        let binary = find_binary("prometheus", "prometheus")?;
        let dir = tempfile::Builder::new()
            .prefix("tributary-prometheus-")
            .tempdir()
            .map_err(|source| TestKitError::Io { context: "create Prometheus temp dir".into(), source })?;
        let source = std::fs::read_to_string(&options.config)
            .map_err(|source| TestKitError::Io { context: format!("read {}", options.config.display()), source })?;
        copy_rules(&options.config, dir.path())?;
        let rendered = dir.path().join("prometheus.yml");

        let mut last_error = None;
        for attempt in 0..5 {
            let port = match options.preferred_port.filter(|_| attempt == 0) {
                Some(p) => p,
                None => free_loopback_port()
                    .map_err(|source| TestKitError::Io { context: "find a free port".into(), source })?,
            };
            let text = render(&source, port, &options);
            std::fs::write(&rendered, text)
                .map_err(|source| TestKitError::Io { context: format!("write {}", rendered.display()), source })?;
            if attempt == 0 {
                check_config_as(&rendered, &options.config)?;
            }
            let log = dir.path().join(format!("prometheus-{port}.log"));
            let mut cmd = Command::new(&binary);
            cmd.arg(format!("--config.file={}", rendered.display()))
                .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg("--storage.tsdb.retention.time=1d")
                .arg("--log.level=info");
            if let Some(interval) = options.interval {
                // Alerts firing before AlertManager is discovered (~5 s) are resent this soon, not after 1 min.
                cmd.arg(format!("--rules.alert.resend-delay={}ms", interval.as_millis()));
            }
            let mut process = ServiceProcess::spawn("prometheus", cmd, &log, dir.path())?;
            match wait_ready(&mut process, port, &log, "Prometheus") {
                Ok(()) => return Ok(Prometheus { process, dir, port }),
                Err(e) => {
                    drop(process);
                    if !read_tail(&log, 50).contains("address already in use") {
                        return Err(e);
                    }
                    last_error = Some(e);
                }
            }
        }
        Err(last_error.expect("at least one attempt"))
    }

    /// The port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The config file actually loaded.
    pub fn rendered_config(&self) -> PathBuf {
        self.dir.path().join("prometheus.yml")
    }

    /// The OS process id.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// `GET /api/v1/query?query=<promql>`: the `data.result` array.
    pub fn query(&self, promql: &str) -> Result<Vec<Json>, TestKitError> {
        let data = self.api(&format!("/api/v1/query?query={}", encode_query(promql)))?;
        Ok(data["result"].as_array().cloned().unwrap_or_default())
    }

    /// `GET /api/v1/targets`: the active targets.
    pub fn active_targets(&self) -> Result<Vec<Json>, TestKitError> {
        Ok(self.api("/api/v1/targets")?["activeTargets"].as_array().cloned().unwrap_or_default())
    }

    /// `GET /api/v1/rules`: the rule groups loaded.
    pub fn rule_groups(&self) -> Result<Vec<Json>, TestKitError> {
        Ok(self.api("/api/v1/rules")?["groups"].as_array().cloned().unwrap_or_default())
    }

    /// Polls `promql` until `pred` accepts the result; returns that result.
    pub fn wait_for_query(
        &self,
        promql: &str,
        timeout: Duration,
        pred: impl Fn(&[Json]) -> bool,
    ) -> Result<Vec<Json>, TestKitError> {
        let start = Instant::now();
        loop {
            let result = self.query(promql)?;
            if pred(&result) {
                return Ok(result);
            }
            if start.elapsed() > timeout {
                return Err(TestKitError::Start {
                    what: format!("waiting for `{promql}` on Prometheus {}", self.url()),
                    detail: format!("last result after {timeout:?}: {}", Json::Array(result)),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A GET on the HTTP API: the `data` field of a `success` answer.
    pub fn api(&self, path_and_query: &str) -> Result<Json, TestKitError> {
        let what = format!("Prometheus GET {}{path_and_query}", self.url());
        let r = http::request(&format!("127.0.0.1:{}", self.port), "GET", path_and_query, None, CLIENT_TIMEOUT)
            .map_err(|e| TestKitError::Start { what: what.clone(), detail: e.to_string() })?;
        let body: Json = serde_json::from_str(&r.body).map_err(|e| TestKitError::Start {
            what: what.clone(),
            detail: format!("HTTP {}: {e}: {}", r.status, r.body),
        })?;
        if body["status"] != "success" {
            return Err(TestKitError::Start { what, detail: format!("HTTP {}: {body}", r.status) });
        }
        Ok(body["data"].clone())
    }
}

impl std::fmt::Debug for Prometheus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Prometheus(127.0.0.1:{}, pid {})", self.port, self.process.pid())
    }
}

/// Runs `promtool check config` on `file` (which also checks its rule files);
/// the error carries promtool's own message.
pub fn check_config(file: &Path) -> Result<String, TestKitError> {
    check_config_as(file, file)
}

/// Runs `promtool check rules` on `files`.
pub fn check_rules(files: &[PathBuf]) -> Result<String, TestKitError> {
    promtool(&["check", "rules"], files, &files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(" "))
}

fn check_config_as(file: &Path, source: &Path) -> Result<String, TestKitError> {
    let shown = if file == source {
        source.display().to_string()
    } else {
        format!("{} (rendered as {})", source.display(), file.display())
    };
    promtool(&["check", "config"], &[file.to_path_buf()], &shown)
}

fn promtool(args: &[&str], files: &[PathBuf], shown: &str) -> Result<String, TestKitError> {
    let promtool = find_binary("promtool", "prometheus")?;
    let out = Command::new(promtool)
        .args(args)
        .args(files)
        .output()
        .map_err(|source| TestKitError::Io { context: format!("run promtool {}", args.join(" ")), source })?;
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if !out.status.success() {
        return Err(TestKitError::Start {
            what: format!("promtool {} of {shown}", args.join(" ")),
            detail: text.trim().to_string(),
        });
    }
    Ok(text)
}

/// The rule files beside a config: `<config dir>/rules/*.yml`.
pub fn rule_files(config: &Path) -> Vec<PathBuf> {
    let rules = config.parent().unwrap_or(Path::new(".")).join("rules");
    let mut files: Vec<PathBuf> = std::fs::read_dir(rules)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yml" | "yaml")))
        .collect();
    files.sort();
    files
}

fn copy_rules(config: &Path, dir: &Path) -> Result<(), TestKitError> {
    let target = dir.join("rules");
    std::fs::create_dir_all(&target)
        .map_err(|source| TestKitError::Io { context: format!("create {}", target.display()), source })?;
    for file in rule_files(config) {
        let to = target.join(file.file_name().unwrap_or_default());
        std::fs::copy(&file, &to)
            .map_err(|source| TestKitError::Io { context: format!("copy {}", file.display()), source })?;
    }
    Ok(())
}

/// The config with placeholders and intervals rewritten.
fn render(source: &str, port: u16, options: &PrometheusOptions) -> String {
    let mut text = source.replace(SELF_PLACEHOLDER, &format!("127.0.0.1:{port}"));
    if let Some(t) = &options.tributary_target {
        text = text.replace(TRIBUTARY_PLACEHOLDER, t);
    }
    if let Some(a) = &options.alertmanager {
        text = text.replace(ALERTMANAGER_PLACEHOLDER, a);
    }
    if let Some(interval) = options.interval {
        let value = format!("{}ms", interval.as_millis());
        text = text
            .lines()
            .map(|line| {
                let trimmed = line.trim_start();
                let indent = &line[..line.len() - trimmed.len()];
                match trimmed.split_once(':') {
                    Some((key @ ("scrape_interval" | "scrape_timeout" | "evaluation_interval"), _)) => {
                        format!("{indent}{key}: {value}")
                    }
                    _ => line.to_string(),
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_rewrites_placeholders_and_intervals() {
        let source = "global:\n  scrape_interval: 15s # x\n  evaluation_interval: 15s\nscrape_configs:\n  - targets: ['127.0.0.1:9090', '127.0.0.1:9187']\n";
        let options = PrometheusOptions {
            interval: Some(Duration::from_secs(1)),
            tributary_target: Some("127.0.0.1:5".into()),
            ..Default::default()
        };
        let out = render(source, 4242, &options);
        assert!(out.contains("  scrape_interval: 1000ms\n  evaluation_interval: 1000ms"), "{out}");
        assert!(out.contains("['127.0.0.1:4242', '127.0.0.1:5']"), "{out}");
    }
}
