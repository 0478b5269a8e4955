//! docker-compose.yml parses, has the documented services on loopback, and
//! mounts config files that exist; `docker compose config` checks it too
//! where a docker CLI with the compose plugin exists (it needs no engine).

use serde_json::Value as Json;
use std::process::Command;
use tributary_testkit::disk::repo_root;
use tributary_testkit::require;
use tributary_testkit::spark::venv_python;

/// docker-compose.yml as JSON, parsed by PyYAML from the test venv.
fn compose() -> Option<Json> {
    let file = repo_root().join("docker-compose.yml");
    let out = Command::new(venv_python())
        .args(["-c", "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))"])
        .arg(&file)
        .output();
    let parsed = match out {
        Ok(o) if o.status.success() => Ok(serde_json::from_slice::<Json>(&o.stdout).expect("JSON from PyYAML")),
        Ok(o) => Err(String::from_utf8_lossy(&o.stderr).to_string()),
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = &parsed {
        assert!(!e.contains("yaml.") || e.contains("No module named"), "docker-compose.yml is not valid YAML: {e}");
    }
    require("PyYAML in the test venv (`make setup`)", parsed)
}

#[test]
fn compose_file_has_the_stack_on_loopback_with_the_repo_configs() {
    let Some(compose) = compose() else { return };
    let services = compose["services"].as_object().expect("services");
    let mut names: Vec<&str> = services.keys().map(String::as_str).collect();
    names.sort();
    assert_eq!(names, ["alertmanager", "grafana", "mysql", "postgres", "prometheus", "spark"]);
    for (name, service) in services {
        assert_eq!(service["network_mode"], "host", "{name} shares the host network (loopback addresses)");
        // Every bind-mounted repo file or dir exists.
        for volume in service["volumes"].as_array().into_iter().flatten() {
            let source = volume.as_str().unwrap().split(':').next().unwrap();
            if let Some(rel) = source.strip_prefix("./").filter(|r| r.starts_with("config/")) {
                assert!(repo_root().join(rel).exists(), "{name} mounts missing {source}");
            }
        }
    }
    let text = |service: &str| services[service].to_string();
    for (service, needle) in [
        ("mysql", "--binlog-format=ROW"),
        ("mysql", "--bind-address=127.0.0.1"),
        ("postgres", "wal_level=logical"),
        ("postgres", "listen_addresses=127.0.0.1"),
        ("prometheus", "--web.listen-address=127.0.0.1:9090"),
        ("alertmanager", "--web.listen-address=127.0.0.1:9093"),
        ("alertmanager", "--cluster.listen-address="),
        ("spark", "spark-defaults.conf:/opt/spark/conf/spark-defaults.conf"),
        ("spark", ":/delta-tables"),
    ] {
        assert!(text(service).contains(needle), "{service} lacks {needle}: {}", text(service));
    }
    assert!(services["mysql"]["image"].as_str().unwrap().starts_with("mysql:8.0"));
    assert!(services["postgres"]["image"].as_str().unwrap().starts_with("postgres:15"));
    assert!(services["spark"]["image"].as_str().unwrap().contains(":3.5."));

    let defaults = std::fs::read_to_string(repo_root().join("config/spark/spark-defaults.conf")).unwrap();
    for needle in [
        "io.delta.sql.DeltaSparkSessionExtension",
        "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        "spark.databricks.delta.properties.defaults.enableChangeDataFeed  true",
        "spark.driver.memory                              1g",
        "spark.executor.memory                            1g",
    ] {
        assert!(defaults.contains(needle), "spark-defaults.conf lacks {needle}");
    }
    let prometheus = std::fs::read_to_string(repo_root().join("config/prometheus/prometheus.yml")).unwrap();
    assert!(prometheus.contains("127.0.0.1:9187") && prometheus.contains("rules/*.yml"));

    // Where a docker CLI with the compose plugin exists (no engine needed), it must agree.
    if Command::new("docker").args(["compose", "version"]).output().is_ok_and(|o| o.status.success()) {
        let out = Command::new("docker")
            .args(["compose", "-f"])
            .arg(repo_root().join("docker-compose.yml"))
            .args(["config", "--quiet"])
            .output()
            .unwrap();
        assert!(out.status.success(), "docker compose config: {}", String::from_utf8_lossy(&out.stderr));
    }
}
