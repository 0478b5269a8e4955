//! A real AlertManager (Debian's `prometheus-alertmanager`) on a free
//! loopback port in a temp dir, clustering off, with the repo's config
//! (config/alertmanager/alertmanager.yml) whose webhook URLs point at the
//! `127.0.0.1:9099` placeholder, rewritten to a test webhook receiver.
//! Plus a client for the v2 API with a bounded timeout on every call.

use crate::http::{self, HttpError};
use crate::ports::free_loopback_port;
use crate::process::{find_binary, ServiceProcess};
use crate::TestKitError;
use serde_json::{json, Value as Json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The webhook placeholder in the repo config, replaced by the test receiver's address.
pub const WEBHOOK_PLACEHOLDER: &str = "127.0.0.1:9099";
/// How long AlertManager may take to answer `/-/ready`.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// The bound on every API call of [`AlertManagerClient`].
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

/// The repo's AlertManager config.
pub fn default_config() -> PathBuf {
    crate::prometheus::repo_root().join("config/alertmanager/alertmanager.yml")
}

/// What to start.
#[derive(Debug, Clone)]
pub struct AlertManagerOptions {
    /// Config file; its `127.0.0.1:9099` webhook addresses are rewritten.
    pub config: PathBuf,
    /// Port of the webhook receiver the config's webhooks should reach.
    pub webhook_port: u16,
    /// A port to try first (e.g. 9093 for `make infra-up`); another is used if it is taken.
    pub preferred_port: Option<u16>,
}

impl AlertManagerOptions {
    /// The repo config with webhooks going to `webhook_port`.
    pub fn new(webhook_port: u16) -> Self {
        AlertManagerOptions { config: default_config(), webhook_port, preferred_port: None }
    }
}

/// A running AlertManager on 127.0.0.1.
pub struct AlertManager {
    // Field order matters: the process stops before its directory is removed.
    process: ServiceProcess,
    dir: tempfile::TempDir,
    port: u16,
    config: PathBuf,
}

impl AlertManager {
    /// Starts AlertManager with the repo config, its webhooks going to `webhook_port`.
    pub fn start(webhook_port: u16) -> Result<Self, TestKitError> {
        Self::start_with(AlertManagerOptions::new(webhook_port))
    }

    /// Starts AlertManager with `options`. A config error is reported with
    /// amtool's own message and the file.
    pub fn start_with(options: AlertManagerOptions) -> Result<Self, TestKitError> {
        let binary = find_binary("prometheus-alertmanager", "prometheus-alertmanager")?;
        let dir = tempfile::Builder::new()
            .prefix("tributary-alertmanager-")
            .tempdir()
            .map_err(|source| TestKitError::Io { context: "create AlertManager temp dir".into(), source })?;
        let text = std::fs::read_to_string(&options.config)
            .map_err(|source| TestKitError::Io { context: format!("read {}", options.config.display()), source })?;
        let rendered = dir.path().join("alertmanager.yml");
        let text = text.replace(WEBHOOK_PLACEHOLDER, &format!("127.0.0.1:{}", options.webhook_port));
        std::fs::write(&rendered, text)
            .map_err(|source| TestKitError::Io { context: format!("write {}", rendered.display()), source })?;
        check_config_as(&rendered, &options.config)?;

        let mut last_error = None;
        for attempt in 0..5 {
            let port = match options.preferred_port.filter(|_| attempt == 0) {
                Some(p) => p,
                None => free_loopback_port()
                    .map_err(|source| TestKitError::Io { context: "find a free port".into(), source })?,
            };
            let log = dir.path().join(format!("alertmanager-{port}.log"));
            let mut cmd = Command::new(&binary);
            cmd.arg(format!("--config.file={}", rendered.display()))
                .arg(format!("--storage.path={}", dir.path().join("data").display()))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg("--cluster.listen-address=")
                .arg("--log.level=info");
            let mut process = ServiceProcess::spawn("prometheus-alertmanager", cmd, &log, dir.path())?;
            match wait_ready(&mut process, port, &log, "AlertManager") {
                Ok(()) => return Ok(AlertManager { process, dir, port, config: options.config }),
                Err(e) => {
                    drop(process);
                    let taken = read_tail(&log, 50).contains("address already in use");
                    if !taken {
                        return Err(e);
                    }
                    // Port taken between our probe and the bind (or the preferred one is busy).
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

    /// The config file actually loaded (webhooks rewritten).
    pub fn rendered_config(&self) -> PathBuf {
        self.dir.path().join("alertmanager.yml")
    }

    /// The source config file.
    pub fn source_config(&self) -> &Path {
        &self.config
    }

    /// A v2 API client bounded by [`CLIENT_TIMEOUT`].
    pub fn client(&self) -> AlertManagerClient {
        AlertManagerClient::new(&format!("127.0.0.1:{}", self.port))
    }

    /// The OS process id.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }
}

impl std::fmt::Debug for AlertManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AlertManager(127.0.0.1:{}, pid {})", self.port, self.process.pid())
    }
}

/// Runs `amtool check-config` on `file`; the error carries amtool's own message.
pub fn check_config(file: &Path) -> Result<String, TestKitError> {
    check_config_as(file, file)
}

fn check_config_as(file: &Path, source: &Path) -> Result<String, TestKitError> {
    let amtool = find_binary("amtool", "prometheus-alertmanager")?;
    let out = Command::new(amtool)
        .arg("check-config")
        .arg(file)
        .output()
        .map_err(|source| TestKitError::Io { context: "run amtool check-config".into(), source })?;
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if !out.status.success() {
        let rendered = if file == source { String::new() } else { format!(" (rendered as {})", file.display()) };
        return Err(TestKitError::Start {
            what: format!("amtool check-config of {}{rendered}", source.display()),
            detail: text.trim().to_string(),
        });
    }
    Ok(text)
}

/// Runs `amtool config routes test --verify.receivers=<expected> <labels>` on `file`:
/// Ok when the labels route to exactly `expected` (comma-separated if several).
pub fn verify_route(file: &Path, labels: &[(&str, &str)], expected: &str) -> Result<(), TestKitError> {
    let amtool = find_binary("amtool", "prometheus-alertmanager")?;
    let out = Command::new(amtool)
        .args(["config", "routes", "test"])
        .arg(format!("--config.file={}", file.display()))
        .arg(format!("--verify.receivers={expected}"))
        .args(labels.iter().map(|(k, v)| format!("{k}={v}")))
        .output()
        .map_err(|source| TestKitError::Io { context: "run amtool config routes test".into(), source })?;
    if !out.status.success() {
        return Err(TestKitError::Start {
            what: format!("amtool config routes test {labels:?} -> {expected} on {}", file.display()),
            detail: format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
                .trim()
                .to_string(),
        });
    }
    Ok(())
}

/// Polls `GET /-/ready` until 200, failing early when the process exits.
pub(crate) fn wait_ready(
    process: &mut ServiceProcess,
    port: u16,
    log: &Path,
    service: &str,
) -> Result<(), TestKitError> {
    let start = Instant::now();
    let authority = format!("127.0.0.1:{port}");
    while start.elapsed() < READY_TIMEOUT {
        if !process.is_running() {
            break;
        }
        if let Ok(r) = http::request(&authority, "GET", "/-/ready", None, Duration::from_secs(2)) {
            if r.status == 200 {
                return Ok(());
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(TestKitError::NotReady {
        service: format!("{service} on {authority}"),
        seconds: start.elapsed().as_secs(),
        log: read_tail(log, 20),
    })
}

/// The last `n` lines of a log file.
pub(crate) fn read_tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// An alert to post.
#[derive(Debug, Clone, Default)]
pub struct Alert {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub starts_at: Option<SystemTime>,
    pub ends_at: Option<SystemTime>,
}

impl Alert {
    /// An alert with label `alertname`.
    pub fn new(alertname: &str) -> Self {
        Alert::default().label("alertname", alertname)
    }

    /// Adds a label.
    pub fn label(mut self, name: &str, value: &str) -> Self {
        self.labels.insert(name.into(), value.into());
        self
    }

    /// Adds an annotation.
    pub fn annotation(mut self, name: &str, value: &str) -> Self {
        self.annotations.insert(name.into(), value.into());
        self
    }

    /// Marks the alert resolved as of now.
    pub fn resolved(mut self) -> Self {
        self.ends_at = Some(SystemTime::now());
        self
    }

    fn to_json(&self) -> Json {
        let mut alert = json!({
            "labels": self.labels,
            "annotations": self.annotations,
            "generatorURL": "http://127.0.0.1/tributary-testkit",
        });
        if let Some(t) = self.starts_at {
            alert["startsAt"] = rfc3339(t).into();
        }
        if let Some(t) = self.ends_at {
            alert["endsAt"] = rfc3339(t).into();
        }
        alert
    }
}

/// A client for AlertManager's v2 API; every call is bounded by its timeout.
#[derive(Debug, Clone)]
pub struct AlertManagerClient {
    authority: String,
    timeout: Duration,
}

impl AlertManagerClient {
    /// A client for `host:port` with [`CLIENT_TIMEOUT`].
    pub fn new(authority: &str) -> Self {
        AlertManagerClient { authority: authority.into(), timeout: CLIENT_TIMEOUT }
    }

    /// The same client with another bound per call.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// `GET /api/v2/status`: cluster, config, uptime, version.
    pub fn status(&self) -> Result<Json, TestKitError> {
        self.call("GET", "/api/v2/status", None)
    }

    /// The receiver names of `GET /api/v2/receivers`.
    pub fn receivers(&self) -> Result<Vec<String>, TestKitError> {
        let list = self.call("GET", "/api/v2/receivers", None)?;
        Ok(list.as_array().into_iter().flatten().filter_map(|r| r["name"].as_str().map(String::from)).collect())
    }

    /// `POST /api/v2/alerts`.
    pub fn post_alerts(&self, alerts: &[Alert]) -> Result<(), TestKitError> {
        let body = Json::Array(alerts.iter().map(Alert::to_json).collect()).to_string();
        self.call("POST", "/api/v2/alerts", Some(&body)).map(|_| ())
    }

    /// `GET /api/v2/alerts` (active, silenced, inhibited, unprocessed).
    pub fn alerts(&self) -> Result<Vec<Json>, TestKitError> {
        let list = self.call("GET", "/api/v2/alerts", None)?;
        Ok(list.as_array().cloned().unwrap_or_default())
    }

    /// The listed alerts whose `alertname` is `name`.
    pub fn alerts_named(&self, name: &str) -> Result<Vec<Json>, TestKitError> {
        Ok(self.alerts()?.into_iter().filter(|a| a["labels"]["alertname"].as_str() == Some(name)).collect())
    }

    /// Creates a silence on equality matchers for `duration` from now; returns its id.
    pub fn create_silence(
        &self,
        matchers: &[(&str, &str)],
        duration: Duration,
        comment: &str,
    ) -> Result<String, TestKitError> {
        let now = SystemTime::now();
        let body = json!({
            "matchers": matchers.iter().map(|(name, value)| json!({
                "name": name, "value": value, "isRegex": false, "isEqual": true,
            })).collect::<Vec<_>>(),
            "startsAt": rfc3339(now),
            "endsAt": rfc3339(now + duration),
            "createdBy": "tributary-testkit",
            "comment": comment,
        });
        let answer = self.call("POST", "/api/v2/silences", Some(&body.to_string()))?;
        answer["silenceID"].as_str().map(String::from).ok_or_else(|| TestKitError::Start {
            what: "AlertManager create silence".into(),
            detail: format!("no silenceID in {answer}"),
        })
    }

    /// Expires a silence (`DELETE /api/v2/silence/{id}`).
    pub fn expire_silence(&self, id: &str) -> Result<(), TestKitError> {
        self.call("DELETE", &format!("/api/v2/silence/{id}"), None).map(|_| ())
    }

    /// `GET /api/v2/silences`.
    pub fn silences(&self) -> Result<Vec<Json>, TestKitError> {
        Ok(self.call("GET", "/api/v2/silences", None)?.as_array().cloned().unwrap_or_default())
    }

    /// Polls `probe` until it returns `Some`, or fails after `timeout` naming `what`.
    pub fn wait_until<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut probe: impl FnMut(&Self) -> Result<Option<T>, TestKitError>,
    ) -> Result<T, TestKitError> {
        let start = Instant::now();
        loop {
            if let Some(v) = probe(self)? {
                return Ok(v);
            }
            if start.elapsed() > timeout {
                return Err(TestKitError::Start {
                    what: format!("waiting for {what} on AlertManager {}", self.authority),
                    detail: format!("not reached within {timeout:?}"),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn call(&self, method: &str, path: &str, body: Option<&str>) -> Result<Json, TestKitError> {
        let what = format!("AlertManager {method} http://{}{path}", self.authority);
        let r = http::request(&self.authority, method, path, body, self.timeout).map_err(|e| TestKitError::Start {
            what: what.clone(),
            detail: match e {
                HttpError::Io(_) => format!("AlertManager unreachable (bounded by {:?}): {e}", self.timeout),
                HttpError::Malformed(_) => e.to_string(),
            },
        })?;
        if !(200..300).contains(&r.status) {
            return Err(TestKitError::Start { what, detail: format!("HTTP {}: {}", r.status, r.body.trim()) });
        }
        if r.body.trim().is_empty() {
            return Ok(Json::Null);
        }
        serde_json::from_str(&r.body)
            .map_err(|e| TestKitError::Start { what, detail: format!("invalid JSON ({e}): {}", r.body) })
    }
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` for a time (UTC).
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_utc() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_709_210_096_789); // 2024-02-29 12:34:56.789
        assert_eq!(rfc3339(t), "2024-02-29T12:34:56.789Z");
    }
}
