//! A real Prometheus with the repo's config and rules: it scrapes, evaluates
//! the rules and delivers alerts to a real AlertManager; config errors come
//! back with promtool's message and the file.

use std::net::TcpListener;
use std::time::Duration;
use tributary_testkit::prometheus::{self, default_config, rule_files};
use tributary_testkit::{require, AlertManager, Prometheus, PrometheusOptions, WebhookReceiver};

const SOON: Duration = Duration::from_secs(30);

fn fast(options: PrometheusOptions) -> PrometheusOptions {
    PrometheusOptions { interval: Some(Duration::from_millis(500)), ..options }
}

/// A closed loopback port: the Tributary target is down.
fn closed_target() -> String {
    format!("127.0.0.1:{}", tributary_testkit::ports::free_loopback_port().unwrap())
}

#[test]
fn promtool_accepts_the_repo_config_and_rules() {
    let Some(out) = require("promtool", prometheus::check_config(&default_config())) else { return };
    assert!(out.contains("SUCCESS"), "{out}");
    let rules = rule_files(&default_config());
    assert!(!rules.is_empty(), "config/prometheus/rules/ holds rule files");
    let out = prometheus::check_rules(&rules).unwrap();
    assert!(out.contains("SUCCESS"), "{out}");
}

/// `promtool test rules` on the repo's rule unit tests: every alert fires
/// (with its labels and annotations) when it should and stays quiet otherwise.
#[test]
fn the_repo_alert_rules_pass_their_promtool_unit_tests() {
    let Some(promtool) = require("promtool", tributary_testkit::process::find_binary("promtool", "prometheus")) else {
        return;
    };
    let tests = default_config().parent().unwrap().join("tests");
    let mut files: Vec<_> = std::fs::read_dir(&tests)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with("_test.yml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} holds rule unit tests", tests.display());
    let out = std::process::Command::new(promtool).args(["test", "rules"]).args(&files).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && text.contains("SUCCESS"), "promtool test rules failed:\n{text}");
    // Every rule of the repo has a severity, a summary and a runbook.
    for rules in rule_files(&default_config()) {
        let text = std::fs::read_to_string(&rules).unwrap();
        let alerts = text.matches("- alert:").count();
        for key in ["severity:", "summary:", "runbook_url:"] {
            assert_eq!(text.matches(key).count(), alerts, "every alert of {} has {key}", rules.display());
        }
    }
}

#[test]
fn prometheus_scrapes_itself_and_evaluates_the_repo_rules() {
    let options = fast(PrometheusOptions { tributary_target: Some(closed_target()), ..Default::default() });
    let Some(prom) = require("Prometheus", Prometheus::start_with(options)) else { return };
    let up = prom
        .wait_for_query(r#"up{job="prometheus"}"#, SOON, |r| r.first().is_some_and(|s| s["value"][1] == "1"))
        .unwrap();
    assert_eq!(up[0]["metric"]["instance"], format!("127.0.0.1:{}", prom.port()));
    // A real metric of the scraped target, not only the synthetic `up`.
    prom.wait_for_query(r#"prometheus_build_info{job="prometheus"}"#, SOON, |r| !r.is_empty()).unwrap();
    let targets = prom.active_targets().unwrap();
    let own = targets.iter().find(|t| t["labels"]["job"] == "prometheus").expect("job prometheus");
    assert_eq!(own["health"], "up", "{own}");

    let groups = prom.rule_groups().unwrap();
    let names: Vec<&str> =
        groups.iter().flat_map(|g| g["rules"].as_array().unwrap()).filter_map(|r| r["name"].as_str()).collect();
    assert!(names.contains(&"TributaryDown"), "rules loaded: {names:?}");
    // Tributary's target is down, so the rule's alert becomes pending.
    prom.wait_for_query(r#"ALERTS{alertname="TributaryDown"}"#, SOON, |r| !r.is_empty()).unwrap();
}

#[test]
fn prometheus_alerts_reach_the_webhook_through_alertmanager() {
    let hook = WebhookReceiver::start().unwrap();
    let Some(am) = require("AlertManager", AlertManager::start(hook.port())) else { return };
    let dir = config_with_rule(
        "groups:\n  - name: testkit\n    rules:\n      - alert: TestkitAlwaysFiring\n        expr: vector(1)\n        \
         labels:\n          severity: warning\n          environment: test\n",
    );
    let options = fast(PrometheusOptions {
        config: dir.path().join("prometheus.yml"),
        tributary_target: Some(closed_target()),
        alertmanager: Some(format!("127.0.0.1:{}", am.port())),
        ..Default::default()
    });
    let Some(_prom) = require("Prometheus", Prometheus::start_with(options)) else { return };
    let n = hook
        .wait_for("TestkitAlwaysFiring", SOON, |n| n.alert_names().contains(&"TestkitAlwaysFiring".to_string()))
        .unwrap();
    assert_eq!((n.path.as_str(), n.status()), ("/test", "firing"));
    assert_eq!(n.alerts()[0]["labels"]["monitor"], "tributary", "external labels kept");
}

#[test]
fn a_config_error_reports_promtool_message_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("prometheus.yml");
    let text =
        std::fs::read_to_string(default_config()).unwrap().replace("scrape_interval: 15s", "scrape_interval: often");
    std::fs::write(&bad, text).unwrap();
    let err = match Prometheus::start_with(PrometheusOptions { config: bad.clone(), ..Default::default() }) {
        Err(tributary_testkit::TestKitError::MissingBinary { .. }) if !tributary_testkit::in_ci() => return,
        Err(e) => e.to_string(),
        Ok(p) => panic!("a config with a bad duration started: {p:?}"),
    };
    assert!(err.contains(&bad.display().to_string()), "names the file: {err}");
    assert!(err.contains("not a valid duration string: \"often\""), "promtool's own message: {err}");
}

#[test]
fn a_rule_error_reports_promtool_message_and_the_rule_file() {
    let dir =
        config_with_rule("groups:\n  - name: broken\n    rules:\n      - alert: Broken\n        expr: up{ == 0\n");
    let err =
        Prometheus::start_with(PrometheusOptions { config: dir.path().join("prometheus.yml"), ..Default::default() })
            .unwrap_err()
            .to_string();
    assert!(err.contains("extra.yml") && err.contains("parse error"), "{err}");
}

#[test]
fn a_taken_port_makes_prometheus_use_another_one() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = taken.local_addr().unwrap().port();
    let options = PrometheusOptions { preferred_port: Some(busy), ..Default::default() };
    let Some(prom) = require("Prometheus", Prometheus::start_with(options)) else { return };
    assert_ne!(prom.port(), busy);
    prom.query("up").unwrap();
}

/// A copy of the repo config and rules in a temp dir, plus `rules/extra.yml`.
fn config_with_rule(rule_yaml: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("rules")).unwrap();
    std::fs::copy(default_config(), dir.path().join("prometheus.yml")).unwrap();
    for f in rule_files(&default_config()) {
        std::fs::copy(&f, dir.path().join("rules").join(f.file_name().unwrap())).unwrap();
    }
    std::fs::write(dir.path().join("rules/extra.yml"), rule_yaml).unwrap();
    dir
}
