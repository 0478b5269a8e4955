//! Live alert test: a real Prometheus scrapes a running `tributary run`
//! (on a real MariaDB) and evaluates the repo's lag rule; the Delta side is
//! stalled by the test failpoint (`TRIBUTARY_FAILPOINT_STALL_FILE`, see
//! src/pipeline/failpoint.rs) while the source keeps changing, so
//! `TributarySourceLag` fires and AlertManager, with the repo's config,
//! delivers it to the warning receiver's webhook; when the stall ends the
//! pipeline catches up and the resolved notification reaches the same receiver.
//!
//! The repo rule waits `for: 1m` above 10 s; the test runs a fast copy of the
//! rule files in which only the warning rule of `TributarySourceLag` is
//! rewritten (`> 2` for 3 s). Every other rule, the critical lag rule
//! included (> 30 s for 1m, out of reach here), is the repo's own.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tributary_testkit::prometheus::{default_config, rule_files};
use tributary_testkit::{require, AlertManager, Notification, Prometheus, PrometheusOptions, WebhookReceiver};

const ALERT: &str = "TributarySourceLag";
/// config/alertmanager/alertmanager.yml routes `severity="warning"` here.
const RECEIVER_PATH: &str = "/warning";
/// Scrape and rule evaluation interval of the test's Prometheus.
const INTERVAL: Duration = Duration::from_millis(500);
/// Bound from the start of the stall to the firing notification.
const FIRE_WITHIN: Duration = Duration::from_secs(30);
/// Bound from the end of the stall to the resolved notification.
const RESOLVE_WITHIN: Duration = Duration::from_secs(20);
/// How often the source changes while the sink is stalled.
const WRITE_EVERY: Duration = Duration::from_millis(250);

/// The repo's Prometheus config and rules in `dir`, with the warning lag rule
/// made fast: `tributary_source_lag_seconds > 2` for 3 s.
fn fast_rules(dir: &Path) -> PathBuf {
    let rules_dir = dir.join("rules");
    std::fs::create_dir_all(&rules_dir).unwrap();
    let config = dir.join("prometheus.yml");
    std::fs::copy(default_config(), &config).unwrap();
    let (mut exprs, mut fors) = (0, 0);
    for file in rule_files(&default_config()) {
        let text = std::fs::read_to_string(&file).unwrap();
        let mut current_alert = String::new();
        let mut in_warning_lag = false;
        let mut out = String::new();
        for line in text.lines() {
            let trimmed = line.trim_start();
            let indent = &line[..line.len() - trimmed.len()];
            let mut line = line.to_string();
            if let Some(name) = trimmed.strip_prefix("- alert:") {
                current_alert = name.trim().to_string();
                in_warning_lag = false;
            } else if current_alert == ALERT && trimmed == "expr: tributary_source_lag_seconds > 10" {
                line = format!("{indent}expr: tributary_source_lag_seconds > 2");
                in_warning_lag = true;
                exprs += 1;
            } else if in_warning_lag && trimmed == "for: 1m" {
                line = format!("{indent}for: 3s");
                fors += 1;
            }
            out.push_str(&line);
            out.push('\n');
        }
        std::fs::write(rules_dir.join(file.file_name().unwrap()), out).unwrap();
    }
    assert_eq!((exprs, fors), (1, 1), "the repo's warning lag rule is `tributary_source_lag_seconds > 10` for 1m");
    config
}

/// The committed version of the Delta table at `path`.
fn committed_version(path: &Path) -> Option<i64> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(tributary_delta::table_status(path, APP)).unwrap().committed_version
}

fn is_lag(n: &Notification, status: &str) -> bool {
    n.path == RECEIVER_PATH && n.status() == status && n.alert_names().iter().any(|a| a == ALERT)
}

#[test]
fn a_stalled_sink_fires_the_lag_alert_to_the_warning_receiver_and_resolves_after_catch_up() {
    let started = Instant::now();
    if !failpoints() {
        return;
    }
    let Some(server) = mariadb() else { return };
    let db = server.create_database().unwrap();
    db.exec("CREATE TABLE items (id INT PRIMARY KEY, qty INT)").unwrap();
    db.exec("INSERT INTO items VALUES (1, 1)").unwrap();
    let dir = test_dir();
    let config = write_config(dir.path(), &server, &format!("{}.*", db.name()), "");
    let address = format!("127.0.0.1:{}", tributary_testkit::ports::free_loopback_port().unwrap());
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("listen = \"127.0.0.1:0\""), "the shared config has a metrics listen address");
    std::fs::write(&config, text.replace("listen = \"127.0.0.1:0\"", &format!("listen = \"{address}\""))).unwrap();
    let stall = dir.path().join("stall");
    let path = table_path(dir.path(), db.name(), "items");

    let hook = WebhookReceiver::start().unwrap();
    let Some(am) = require("AlertManager", AlertManager::start(hook.port())) else { return };
    let mut pipeline = Pipeline::start_with_env(&config, &[("TRIBUTARY_FAILPOINT_STALL_FILE", &stall)]);
    wait_committed(&mut pipeline, &path, master_version(&server));

    let prom_dir = tempfile::tempdir().unwrap();
    let options = PrometheusOptions {
        config: fast_rules(prom_dir.path()),
        interval: Some(INTERVAL),
        tributary_target: Some(address.clone()),
        alertmanager: Some(format!("127.0.0.1:{}", am.port())),
        ..Default::default()
    };
    let Some(prom) = require("Prometheus", Prometheus::start_with(options)) else { return };
    let lag_query = r#"tributary_source_lag_seconds{job="tributary"}"#;
    prom.wait_for_query(lag_query, Duration::from_secs(15), |r| r.first().is_some_and(|s| s["value"][1] == "0"))
        .unwrap_or_else(|e| panic!("Prometheus never scraped a caught-up pipeline: {e}"));
    let ready = started.elapsed();

    // Stall the sink; the source keeps changing until the alert is delivered.
    std::fs::write(&stall, b"").unwrap();
    let version_before = committed_version(&path);
    let stall_started = Instant::now();
    let mut next_id = 2;
    let firing = loop {
        pipeline.assert_running();
        db.exec(&format!("INSERT INTO items VALUES ({next_id}, {next_id})")).unwrap();
        next_id += 1;
        if let Ok(n) = hook.wait_for("firing lag", WRITE_EVERY, |n| is_lag(n, "firing")) {
            break n;
        }
        assert!(
            stall_started.elapsed() < FIRE_WITHIN,
            "{ALERT} not delivered to {RECEIVER_PATH} within {FIRE_WITHIN:?} of the stall; webhook got:\n{}\nALERTS: {:?}",
            tributary_testkit::webhook::describe(&hook.notifications()),
            prom.query("ALERTS"),
        );
    };
    let fired_after = stall_started.elapsed();
    assert_eq!(committed_version(&path), version_before, "nothing was committed to Delta while stalled");
    assert_eq!(firing.receiver(), "warning");
    let alert = firing.alerts().into_iter().find(|a| a["labels"]["alertname"] == ALERT).unwrap().clone();
    assert_eq!(alert["labels"]["severity"], "warning", "{alert}");
    assert_eq!(alert["labels"]["job"], "tributary", "{alert}");
    assert_eq!(alert["labels"]["instance"], address.as_str(), "{alert}");
    assert_eq!(alert["annotations"]["runbook_url"], "docs/metrics.md#tributarysourcelag", "{alert}");
    assert!(alert["annotations"]["summary"].as_str().unwrap().contains("behind the source"), "{alert}");

    // End the stall: the pipeline commits what it read and the alert resolves.
    let target = master_version(&server);
    std::fs::remove_file(&stall).unwrap();
    let stall_ended = Instant::now();
    wait_committed(&mut pipeline, &path, target);
    let caught_up_after = stall_ended.elapsed();
    let resolved = hook
        .wait_for("resolved lag", RESOLVE_WITHIN, |n| is_lag(n, "resolved"))
        .unwrap_or_else(|e| panic!("{e}\nALERTS: {:?}", prom.query("ALERTS")));
    let resolved_after = stall_ended.elapsed();
    assert_eq!(resolved.receiver(), "warning");
    assert!(resolved.alerts().iter().all(|a| a["status"] == "resolved"), "{:?}", resolved.body);

    // Only the warning receiver heard of it: routed by severity, nothing critical.
    let others: Vec<Notification> = hook.notifications().into_iter().filter(|n| n.path != RECEIVER_PATH).collect();
    assert!(others.is_empty(), "unexpected notifications:\n{}", tributary_testkit::webhook::describe(&others));
    eprintln!(
        "alert_live: services ready {ready:?}; fired+delivered {fired_after:?} after the stall began \
         ({} source changes); caught up {caught_up_after:?} and resolved delivered {resolved_after:?} \
         after it ended; total {:?}",
        next_id - 2,
        started.elapsed()
    );
    assert!(pipeline.stop().success());
}
