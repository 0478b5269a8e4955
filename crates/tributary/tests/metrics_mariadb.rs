//! `tributary run` serves /metrics, /healthz and /readyz: the families of
//! docs/metrics.md with values that follow a real pipeline, every metric the
//! alert rules (and the dashboard) use, and a clear start-up error when the
//! metrics port is taken.

mod common;

use common::http::{get, value};
use common::*;
use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

/// Series names (with `_total`, `_bucket`, ... suffixes) of a scrape.
fn series_names(scrape: &str) -> BTreeSet<String> {
    scrape
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap().to_string())
        .collect()
}

/// Every `tributary_*` metric name used in the files of `dir` with extension `ext`.
fn metric_names_in(dir: &Path, ext: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return names };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == ext) && !path.to_string_lossy().ends_with("_test.yml") {
            // Comment lines of YAML name files, not metrics.
            let text: String = std::fs::read_to_string(&path)
                .unwrap()
                .lines()
                .filter(|l| !l.trim_start().starts_with('#'))
                .map(|l| format!("{l}\n"))
                .collect();
            let mut rest = text.as_str();
            while let Some(at) = rest.find("tributary_") {
                let start = &rest[at..];
                let end = start.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(start.len());
                let before = rest[..at].chars().last();
                if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                    names.insert(start[..end].to_string());
                }
                rest = &start[end..];
            }
        }
    }
    names
}

/// Scrapes until `check` accepts the text (or panics with the last scrape).
fn scrape_until(pipeline: &mut Pipeline, address: &str, what: &str, check: impl Fn(&str) -> bool) -> String {
    let start = Instant::now();
    loop {
        pipeline.assert_running();
        let response = get(address, "/metrics");
        assert_eq!(response.status, 200);
        if check(&response.body) {
            return response.body;
        }
        if start.elapsed() > CATCH_UP {
            panic!("{what} not seen within {CATCH_UP:?}; last scrape:\n{}", response.body);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn with_metrics_on(config: &Path, address: &str) {
    let text = std::fs::read_to_string(config)
        .unwrap()
        .replace("listen = \"127.0.0.1:0\"", &format!("listen = \"{address}\""));
    std::fs::write(config, text).unwrap();
}

#[test]
fn a_live_pipeline_exports_every_family_and_every_metric_the_rules_use() {
    let Some(server) = mariadb() else { return };
    let db = server.create_database().unwrap();
    db.exec("CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(50), qty INT)").unwrap();
    db.exec("INSERT INTO items VALUES (1,'a',1),(2,'b',2)").unwrap();
    let dir = test_dir();
    let config = write_config(dir.path(), &server, &format!("{}.*", db.name()), "");
    let address = format!("127.0.0.1:{}", tributary_testkit::ports::free_loopback_port().unwrap());
    with_metrics_on(&config, &address);
    let path = table_path(dir.path(), db.name(), "items");
    let table = format!("{}.items", db.name());
    let t = table.as_str();

    let mut pipeline = Pipeline::start(&config);
    wait_committed(&mut pipeline, &path, master_version(&server));
    assert_eq!(get(&address, "/healthz").status, 200);
    let start = Instant::now();
    while get(&address, "/readyz").status != 200 {
        assert!(start.elapsed() < CATCH_UP, "/readyz never became 200; log:\n{}", pipeline.log_text());
        pipeline.assert_running();
        std::thread::sleep(Duration::from_millis(100));
    }

    db.exec("INSERT INTO items VALUES (3,'c',3)").unwrap();
    db.exec("UPDATE items SET qty = 20 WHERE id = 2").unwrap();
    db.exec("DELETE FROM items WHERE id = 1").unwrap();
    let target = master_version(&server);
    wait_committed(&mut pipeline, &path, target);
    let (file_index, offset) = (target >> 32, target & 0xffff_ffff);
    // A validation run, whose result the pipeline exports (tributary_validation_*, used by a rule).
    let validated = tributary(&["validate", "--config", config.to_str().unwrap()]);
    assert_eq!(validated.status.code(), Some(0), "{}", String::from_utf8_lossy(&validated.stdout));
    let scrape = scrape_until(&mut pipeline, &address, "the committed position and zero lag", |s| {
        value(s, "tributary_committed_position", &[("table", t), ("part", "offset")]) == Some(offset as f64)
            && value(s, "tributary_source_lag_seconds", &[]) == Some(0.0)
            && value(s, "tributary_mysql_binlog_files_retained", &[]).is_some_and(|v| v >= 1.0)
            && value(s, "tributary_validation_passed", &[("table", t)]) == Some(1.0)
    });
    let v = |name: &str, labels: &[(&str, &str)]| {
        value(&scrape, name, labels).unwrap_or_else(|| panic!("{name} {labels:?} missing in:\n{scrape}"))
    };
    for op in ["insert", "update", "delete"] {
        assert_eq!(v("tributary_events_total", &[("table", t), ("op", op)]), 1.0, "one {op} event");
    }
    assert_eq!(v("tributary_snapshot_rows_total", &[("table", t)]), 2.0);
    assert!(v("tributary_snapshot_rows_expected", &[("table", t)]) >= 0.0);
    // 2 snapshot rows, the insert and the update's after-image.
    assert_eq!(v("tributary_rows_written_total", &[("table", t)]), 4.0);
    assert!(v("tributary_bytes_written_total", &[("table", t)]) > 0.0);
    assert!(v("tributary_delta_table_version", &[("table", t)]) >= 2.0);
    assert_eq!(v("tributary_committed_position", &[("table", t), ("part", "file_index")]), file_index as f64);
    assert!(v("tributary_delta_commit_duration_seconds_count", &[]) >= 2.0);
    assert!(v("tributary_delta_commit_duration_seconds_sum", &[]) > 0.0);
    for kind in ["source", "sink", "snapshot"] {
        assert_eq!(v("tributary_errors_total", &[("kind", kind)]), 0.0, "no {kind} error");
    }
    assert_eq!(v("tributary_pipeline_state", &[("state", "streaming")]), 1.0);
    assert_eq!(v("tributary_pipeline_state", &[("state", "starting")]), 0.0);
    assert!(v("tributary_mysql_binlog_oldest_file_index", &[]) >= 1.0);
    assert!(v("tributary_mysql_binlog_oldest_file_index", &[]) <= file_index as f64);
    for kind in ["missing", "extra", "different", "schema"] {
        assert_eq!(v("tributary_validation_differences", &[("table", t), ("kind", kind)]), 0.0, "no {kind} difference");
    }
    assert!(v("tributary_validation_last_run_timestamp_seconds", &[]) > 0.0);

    let exported = series_names(&scrape);
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut used = metric_names_in(&repo.join("config/prometheus/rules"), "yml");
    assert!(!used.is_empty(), "the alert rules use Tributary metrics");
    used.extend(metric_names_in(&repo.join("config/grafana"), "json"));
    let missing: Vec<&String> = used.iter().filter(|n| !exported.contains(*n)).collect();
    assert!(missing.is_empty(), "used by rules/dashboards but not exported: {missing:?}\nexported: {exported:?}");

    assert!(!pipeline.log_text().contains(CDC_PASSWORD), "the password is never logged");
    assert!(pipeline.stop().success());
}

#[test]
fn a_metrics_port_in_use_fails_start_up_naming_the_address_and_the_key() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let dir = test_dir();
    let config = dir.path().join("pipeline.toml");
    let text = format!(
        "[pipeline]\nname = \"{APP}\"\n[source.mysql]\nport = 9\nuser = \"cdc\"\npassword = \"{CDC_PASSWORD}\"\n\
         include = [\"db.*\"]\n[sink.delta]\nroot = \"{}\"\n[metrics]\nlisten = \"{address}\"\n",
        dir.path().join("lake").display()
    );
    std::fs::write(&config, text).unwrap();
    let out = tributary(&["run", "--config", config.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "must exit non-zero; stderr:\n{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "exactly one error line; stderr:\n{stderr}");
    assert!(errors[0].contains(&address) && errors[0].contains("metrics.listen"), "{}", errors[0]);
    assert!(errors[0].contains("in use"), "{}", errors[0]);
    assert!(!stderr.contains(CDC_PASSWORD), "the password is never printed: {stderr}");
    assert!(!dir.path().join("lake").exists(), "nothing written");
}
