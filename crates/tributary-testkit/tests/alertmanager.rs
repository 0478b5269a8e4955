//! The alerting suite: a real AlertManager with the repo's config
//! (config/alertmanager/alertmanager.yml), its webhooks rewritten to a test
//! receiver, driven through the v2 API only.
//!
//! A test that asserts something was *not* delivered first waits for a
//! sentinel alert that takes the same path through AlertManager at the same
//! time, so absence is checked after a delivery that would have carried it,
//! never after a fixed sleep.

use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant};
use tributary_testkit::alertmanager::{self, default_config, verify_route};
use tributary_testkit::webhook::describe;
use tributary_testkit::{require, Alert, AlertManager, AlertManagerClient, AlertManagerOptions, WebhookReceiver};

/// Long enough for group_wait (1 s) + group_interval (2 s) several times over on a busy machine.
const DELIVERY: Duration = Duration::from_secs(20);

fn stack() -> Option<(AlertManager, WebhookReceiver)> {
    let hook = WebhookReceiver::start().expect("start the webhook receiver");
    let am = require("AlertManager", AlertManager::start(hook.port()))?;
    Some((am, hook))
}

/// A unique alert name, so parallel tests and repeats never mix.
fn name(prefix: &str) -> String {
    format!("{prefix}_{}", &tributary_testkit::unique_name()[5..])
}

#[test]
fn status_and_receivers_are_listed() {
    let Some((am, hook)) = stack() else { return };
    let status = am.client().status().unwrap();
    assert_eq!(status["cluster"]["status"], "disabled", "clustering is off: {status}");
    assert!(status["versionInfo"]["version"].is_string(), "{status}");
    let loaded = status["config"]["original"].as_str().unwrap();
    assert!(loaded.contains(&hook.url("/critical")), "webhooks rewritten to the test receiver:\n{loaded}");
    let mut receivers = am.client().receivers().unwrap();
    receivers.sort();
    assert_eq!(receivers, ["critical", "default", "test", "warning"]);
}

#[test]
fn a_posted_alert_is_listed_within_5_s_and_reaches_the_webhook() {
    let Some((am, hook)) = stack() else { return };
    let alert = name("Posted");
    let client = am.client();
    let posted = Instant::now();
    client.post_alerts(&[Alert::new(&alert).label("pipeline", "shop")]).unwrap();
    let listed = client
        .wait_until("the posted alert listed", Duration::from_secs(5), |c| {
            Ok(c.alerts_named(&alert)?.into_iter().next())
        })
        .unwrap();
    assert!(posted.elapsed() < Duration::from_secs(5));
    assert_eq!(listed["status"]["state"], "active", "{listed}");
    assert_eq!(listed["labels"]["pipeline"], "shop");
    let n = hook.wait_for(&format!("with {alert}"), DELIVERY, |n| n.alert_names().contains(&alert)).unwrap();
    assert_eq!((n.path.as_str(), n.receiver(), n.status()), ("/default", "default", "firing"));
}

#[test]
fn critical_and_warning_alerts_reach_different_receivers() {
    let Some((am, hook)) = stack() else { return };
    let (crit, warn) = (name("DiskFull"), name("LagHigh"));
    am.client()
        .post_alerts(&[Alert::new(&crit).label("severity", "critical"), Alert::new(&warn).label("severity", "warning")])
        .unwrap();
    let c = hook.wait_for(&format!("with {crit}"), DELIVERY, |n| n.alert_names().contains(&crit)).unwrap();
    let w = hook.wait_for(&format!("with {warn}"), DELIVERY, |n| n.alert_names().contains(&warn)).unwrap();
    assert_eq!((c.path.as_str(), c.receiver()), ("/critical", "critical"));
    assert_eq!((w.path.as_str(), w.receiver()), ("/warning", "warning"));
    let all = hook.notifications();
    for n in &all {
        let names = n.alert_names();
        assert!(!(names.contains(&crit) && n.path != "/critical"), "critical went elsewhere:\n{}", describe(&all));
        assert!(!(names.contains(&warn) && n.path != "/warning"), "warning went elsewhere:\n{}", describe(&all));
    }
}

#[test]
fn environment_test_alerts_never_reach_the_default_receiver() {
    let Some((am, hook)) = stack() else { return };
    let env_alerts = [name("EnvPlain"), name("EnvCritical"), name("EnvWarning")];
    let sentinel = name("ProdPlain");
    am.client()
        .post_alerts(&[
            Alert::new(&env_alerts[0]).label("environment", "test"),
            Alert::new(&env_alerts[1]).label("environment", "test").label("severity", "critical"),
            Alert::new(&env_alerts[2]).label("environment", "test").label("severity", "warning"),
            Alert::new(&sentinel),
        ])
        .unwrap();
    for alert in &env_alerts {
        let n = hook.wait_for(&format!("with {alert}"), DELIVERY, |n| n.alert_names().contains(alert)).unwrap();
        assert_eq!((n.path.as_str(), n.receiver()), ("/test", "test"));
    }
    let s = hook.wait_for(&format!("with {sentinel}"), DELIVERY, |n| n.alert_names().contains(&sentinel)).unwrap();
    assert_eq!(s.path, "/default");
    let all = hook.notifications();
    let leaked: Vec<_> = all.iter().filter(|n| n.path != "/test" && n.has_alert_with("environment", "test")).collect();
    assert!(leaked.is_empty(), "environment=test reached another receiver:\n{}", describe(&all));
}

#[test]
fn alerts_are_grouped_by_alertname_and_severity() {
    let Some((am, hook)) = stack() else { return };
    let alert = name("Grouped");
    am.client()
        .post_alerts(&[
            Alert::new(&alert).label("severity", "warning").label("table", "orders"),
            Alert::new(&alert).label("severity", "warning").label("table", "customers"),
            Alert::new(&alert).label("severity", "critical").label("table", "payments"),
        ])
        .unwrap();
    let w = hook
        .wait_for("the warning group", DELIVERY, |n| n.path == "/warning" && n.alert_names().contains(&alert))
        .unwrap();
    let c = hook
        .wait_for("the critical group", DELIVERY, |n| n.path == "/critical" && n.alert_names().contains(&alert))
        .unwrap();
    assert_eq!(w.alerts().len(), 2, "both warnings in one notification: {}", w.body);
    assert!(w.has_alert_with("table", "orders") && w.has_alert_with("table", "customers"));
    assert_eq!(w.group_labels(), &serde_json::json!({"alertname": alert, "severity": "warning"}));
    assert_eq!(c.alerts().len(), 1, "{}", c.body);
    assert_eq!(c.group_labels(), &serde_json::json!({"alertname": alert, "severity": "critical"}));
}

#[test]
fn a_critical_alert_inhibits_the_warning_with_equal_labels() {
    let Some((am, hook)) = stack() else { return };
    let alert = name("Lag");
    let client = am.client();
    client
        .post_alerts(&[
            Alert::new(&alert).label("severity", "critical").label("pipeline", "shop").label("table", "orders"),
            Alert::new(&alert).label("severity", "warning").label("pipeline", "shop").label("table", "orders"),
            // Another table: not inhibited; it travels with the inhibited one.
            Alert::new(&alert).label("severity", "warning").label("pipeline", "shop").label("table", "customers"),
        ])
        .unwrap();
    hook.wait_for("the critical", DELIVERY, |n| n.path == "/critical" && n.alert_names().contains(&alert)).unwrap();
    hook.wait_for("the other table's warning", DELIVERY, |n| {
        n.path == "/warning" && n.alert_names().contains(&alert) && n.has_alert_with("table", "customers")
    })
    .unwrap();
    let inhibited = client
        .wait_until("the warning on orders inhibited", DELIVERY, |c| {
            Ok(c.alerts_named(&alert)?.into_iter().find(|a| {
                a["labels"]["severity"] == "warning"
                    && a["labels"]["table"] == "orders"
                    && a["status"]["state"] == "suppressed"
            }))
        })
        .unwrap();
    assert!(!inhibited["status"]["inhibitedBy"].as_array().unwrap().is_empty(), "{inhibited}");
    let all = hook.notifications();
    let leaked = all.iter().any(|n| n.path == "/warning" && n.has_alert_with("table", "orders"));
    assert!(!leaked, "the inhibited warning was delivered:\n{}", describe(&all));
}

#[test]
fn a_silence_suppresses_matching_alerts_and_expiring_it_lets_them_through() {
    let Some((am, hook)) = stack() else { return };
    let (silenced, sentinel) = (name("Silenced"), name("Loud"));
    let client = am.client();
    let id = client.create_silence(&[("alertname", &silenced)], Duration::from_secs(3600), "maintenance").unwrap();
    assert!(client.silences().unwrap().iter().any(|s| s["id"] == id.as_str() && s["status"]["state"] == "active"));
    client
        .post_alerts(&[
            Alert::new(&silenced).label("severity", "warning"),
            Alert::new(&sentinel).label("severity", "warning"),
        ])
        .unwrap();
    let state = client
        .wait_until("the alert suppressed by the silence", DELIVERY, |c| {
            Ok(c.alerts_named(&silenced)?.into_iter().find(|a| a["status"]["state"] == "suppressed"))
        })
        .unwrap();
    assert_eq!(state["status"]["silencedBy"], serde_json::json!([id]));
    hook.wait_for("the sentinel", DELIVERY, |n| n.alert_names().contains(&sentinel)).unwrap();
    let all = hook.notifications();
    assert!(!all.iter().any(|n| n.alert_names().contains(&silenced)), "silenced alert delivered:\n{}", describe(&all));

    client.expire_silence(&id).unwrap();
    assert!(client.silences().unwrap().iter().any(|s| s["id"] == id.as_str() && s["status"]["state"] == "expired"));
    let n = hook
        .wait_for("the alert after the silence expired", DELIVERY, |n| n.alert_names().contains(&silenced))
        .unwrap();
    assert_eq!((n.path.as_str(), n.status()), ("/warning", "firing"));
    let listed = client.alerts_named(&silenced).unwrap();
    assert_eq!(listed[0]["status"]["state"], "active");
}

#[test]
fn resolved_notifications_are_delivered() {
    let Some((am, hook)) = stack() else { return };
    let alert = name("Resolves");
    let client = am.client();
    client.post_alerts(&[Alert::new(&alert).label("severity", "critical")]).unwrap();
    hook.wait_for("the firing notification", DELIVERY, |n| n.status() == "firing" && n.alert_names().contains(&alert))
        .unwrap();
    client.post_alerts(&[Alert::new(&alert).label("severity", "critical").resolved()]).unwrap();
    let n = hook
        .wait_for("the resolved notification", DELIVERY, |n| {
            n.status() == "resolved" && n.alert_names().contains(&alert)
        })
        .unwrap();
    assert_eq!(n.path, "/critical");
    assert_eq!(n.alerts()[0]["status"], "resolved");
}

#[test]
fn an_unreachable_alertmanager_gives_a_clear_error_within_the_bound() {
    // Nothing listens on this port.
    let port = tributary_testkit::ports::free_loopback_port().unwrap();
    let start = Instant::now();
    let err = AlertManagerClient::new(&format!("127.0.0.1:{port}")).status().unwrap_err().to_string();
    assert!(start.elapsed() <= alertmanager::CLIENT_TIMEOUT + Duration::from_secs(1), "{:?}", start.elapsed());
    assert!(err.contains("AlertManager unreachable") && err.contains(&port.to_string()), "{err}");

    // A listener that accepts and never answers: bounded too, no hang.
    let black_hole = TcpListener::bind("127.0.0.1:0").unwrap();
    let authority = black_hole.local_addr().unwrap().to_string();
    let start = Instant::now();
    let client = AlertManagerClient::new(&authority).with_timeout(Duration::from_secs(1));
    let err = client.post_alerts(&[Alert::new("Nobody")]).unwrap_err().to_string();
    let took = start.elapsed();
    assert!(took >= Duration::from_secs(1) && took < Duration::from_secs(3), "{took:?}");
    assert!(err.contains("AlertManager unreachable") && err.contains("timed out"), "{err}");
}

#[test]
fn amtool_accepts_the_repo_config() {
    let Some(out) = require("amtool", alertmanager::check_config(&default_config())) else { return };
    assert!(out.contains("SUCCESS") && out.contains("4 receivers"), "{out}");
}

#[test]
fn every_route_of_the_repo_config_reaches_its_receiver() {
    let config = default_config();
    let routes: &[(&[(&str, &str)], &str)] = &[
        (&[("alertname", "Anything")], "default"),
        (&[("alertname", "X"), ("severity", "info")], "default"),
        (&[("alertname", "X"), ("severity", "critical")], "critical"),
        (&[("alertname", "X"), ("severity", "warning")], "warning"),
        (&[("alertname", "X"), ("environment", "test")], "test"),
        (&[("alertname", "X"), ("environment", "test"), ("severity", "critical")], "test"),
        (&[("alertname", "X"), ("environment", "test"), ("severity", "warning")], "test"),
        (&[("alertname", "X"), ("environment", "prod"), ("severity", "critical")], "critical"),
    ];
    for (labels, receiver) in routes {
        let Some(()) = require("amtool", verify_route(&config, labels, receiver)) else { return };
    }
    // And a wrong expectation is caught.
    let err = verify_route(&config, &[("severity", "critical")], "default").unwrap_err().to_string();
    assert!(err.contains("critical"), "{err}");
}

#[test]
fn a_config_error_reports_amtool_message_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("alertmanager.yml");
    let text = std::fs::read_to_string(default_config()).unwrap().replace("receiver: critical", "receiver: pager");
    std::fs::write(&bad, text).unwrap();
    let hook = WebhookReceiver::start().unwrap();
    let options = AlertManagerOptions { config: bad.clone(), webhook_port: hook.port(), preferred_port: None };
    let err = match AlertManager::start_with(options) {
        Err(tributary_testkit::TestKitError::MissingBinary { .. }) if !tributary_testkit::in_ci() => return,
        Err(e) => e.to_string(),
        Ok(am) => panic!("a config with an undefined receiver started: {am:?}"),
    };
    assert!(err.contains(&bad.display().to_string()), "names the file: {err}");
    assert!(err.contains("undefined receiver \"pager\""), "amtool's own message: {err}");
    assert_bad_yaml_is_reported(dir.path(), hook.port());
}

fn assert_bad_yaml_is_reported(dir: &Path, webhook_port: u16) {
    let bad = dir.join("broken.yml");
    std::fs::write(&bad, "route:\n  receiver: [oops\n").unwrap();
    let options = AlertManagerOptions { config: bad.clone(), webhook_port, preferred_port: None };
    let err = AlertManager::start_with(options).unwrap_err().to_string();
    assert!(err.contains("broken.yml") && err.contains("yaml"), "{err}");
}

#[test]
fn a_taken_port_makes_alertmanager_use_another_one() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = taken.local_addr().unwrap().port();
    let hook = WebhookReceiver::start().unwrap();
    let options = AlertManagerOptions { preferred_port: Some(busy), ..AlertManagerOptions::new(hook.port()) };
    let Some(am) = require("AlertManager", AlertManager::start_with(options)) else { return };
    assert_ne!(am.port(), busy);
    am.client().status().unwrap();
}
