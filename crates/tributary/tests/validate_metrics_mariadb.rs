//! `tributary validate` results reach a running pipeline's /metrics (through
//! `<sink.delta.root>/_tributary/validation.json`): a mirror changed behind the
//! pipeline's back reads `tributary_validation_passed 0` with its difference
//! counts, and 1 again once a validation passes.

mod common;

use common::http::{scrape, value};
use common::*;
use std::process::Command;
use std::time::{Duration, Instant};

fn validate(config: &std::path::Path) -> i32 {
    let out = tributary(&["validate", "--config", config.to_str().unwrap()]);
    out.status.code().unwrap_or(-1)
}

#[test]
fn a_failed_validation_is_exported_by_the_running_pipeline_until_one_passes() {
    let Some(server) = mariadb() else { return };
    let Some(python) = python() else { return };
    let db = server.create_database().unwrap();
    db.exec("CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(50), qty INT)").unwrap();
    let rows: Vec<String> = (1..=20).map(|i| format!("({i}, 'item {i}', {i})")).collect();
    db.exec(&format!("INSERT INTO items VALUES {}", rows.join(","))).unwrap();
    let dir = test_dir();
    let config = write_config(dir.path(), &server, &format!("{}.*", db.name()), "");
    let address = format!("127.0.0.1:{}", tributary_testkit::ports::free_loopback_port().unwrap());
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("listen = \"127.0.0.1:0\"", &format!("listen = \"{address}\""));
    std::fs::write(&config, text).unwrap();
    let path = table_path(dir.path(), db.name(), "items");
    let table = format!("{}.items", db.name());
    let t = table.as_str();

    let mut pipeline = Pipeline::start(&config);
    wait_committed(&mut pipeline, &path, master_version(&server));
    let before = scrape(&address);
    assert_eq!(value(&before, "tributary_validation_passed", &[("table", t)]), None, "no validation yet");
    assert_eq!(value(&before, "tributary_validation_last_run_timestamp_seconds", &[]), Some(0.0));

    // Change the mirror behind the pipeline's back (it is idle: no source change follows).
    let script = format!(
        "from deltalake import DeltaTable\n\
         t = DeltaTable('{p}')\n\
         t.update(predicate='id = 7', updates={{'name': \"'tampered'\"}})\n\
         t.delete('id = 3')\n\
         import os; os._exit(0)  # delta-rs can abort at interpreter exit\n",
        p = path.display()
    );
    let py = Command::new(&python).args(["-c", &script]).output().unwrap();
    assert!(py.status.success(), "python: {}", String::from_utf8_lossy(&py.stderr));
    let started = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    assert_eq!(validate(&config), 1, "the changed mirror fails");
    let record = dir.path().join("lake/_tributary/validation.json");
    let recorded: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&record).unwrap()).unwrap();
    assert_eq!(recorded["outcome"], "failed");
    assert_eq!(recorded["exit_code"], 1);
    assert_eq!(recorded["tables"][0]["table"], t);
    assert_eq!(recorded["tables"][0]["passed"], false);
    assert_eq!(recorded["tables"][0]["source_rows"], 20);
    assert_eq!(recorded["tables"][0]["delta_rows"], 19);

    let s = scrape(&address);
    pipeline.assert_running();
    let v = |name: &str, labels: &[(&str, &str)]| {
        value(&s, name, labels).unwrap_or_else(|| panic!("{name} {labels:?} in:\n{s}"))
    };
    assert_eq!(v("tributary_validation_passed", &[("table", t)]), 0.0);
    assert_eq!(v("tributary_validation_differences", &[("table", t), ("kind", "missing")]), 1.0);
    assert_eq!(v("tributary_validation_differences", &[("table", t), ("kind", "different")]), 1.0);
    assert_eq!(v("tributary_validation_differences", &[("table", t), ("kind", "extra")]), 0.0);
    assert_eq!(v("tributary_validation_differences", &[("table", t), ("kind", "schema")]), 0.0);
    let last_run = v("tributary_validation_last_run_timestamp_seconds", &[]);
    assert!(last_run >= started.floor() && last_run < started + 600.0, "last run {last_run}, started {started}");
    // `tributary status` does not take Tributary's own directory for a table.
    let status = tributary(&["status", "--config", config.to_str().unwrap()]);
    let status_text = format!("{}{}", String::from_utf8_lossy(&status.stdout), String::from_utf8_lossy(&status.stderr));
    assert!(!status_text.contains("_tributary/") && !status_text.contains("validation.json"), "{status_text}");

    // Make the source match the mirror without the pipeline seeing it (no binlog): the next validation passes.
    db.exec(
        "SET SESSION sql_log_bin = 0; UPDATE items SET name = 'tampered' WHERE id = 7; DELETE FROM items WHERE id = 3",
    )
    .unwrap();
    assert_eq!(validate(&config), 0, "source and mirror agree again");
    let start = Instant::now();
    let s = loop {
        let s = scrape(&address);
        if value(&s, "tributary_validation_passed", &[("table", t)]) == Some(1.0) {
            break s;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "still not passed:\n{s}");
        std::thread::sleep(Duration::from_millis(100));
    };
    for kind in ["missing", "extra", "different", "schema"] {
        assert_eq!(value(&s, "tributary_validation_differences", &[("table", t), ("kind", kind)]), Some(0.0), "{kind}");
    }
    assert!(value(&s, "tributary_validation_last_run_timestamp_seconds", &[]).unwrap() >= last_run);
    assert!(pipeline.stop().success());
}
