//! Bad input gets one line naming the cause and what to change, a non-zero
//! exit, and nothing written.

mod common;

use common::*;
use tributary_testkit::{require, MariaDb, MariaDbOptions};

/// Runs `tributary run` expecting a failure; returns its one-line error.
fn run_fails(config: &std::path::Path) -> String {
    let out = tributary(&["run", "--config", config.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "must exit non-zero; stderr:\n{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "exactly one error line; stderr:\n{stderr}");
    errors[0].to_string()
}

fn nothing_written(dir: &std::path::Path) {
    let lake = dir.join("lake");
    let tables = tributary_delta::list_tables(&lake);
    assert!(tables.is_empty(), "no Delta table may be written: {tables:?}");
}

#[test]
fn a_wrong_password_is_one_line_naming_the_user_and_the_fix() {
    let Some(server) = mariadb() else { return };
    let db = server.create_database().unwrap();
    db.exec("CREATE TABLE t (id INT PRIMARY KEY)").unwrap();
    let dir = test_dir();
    let config = write_config(dir.path(), &server, &format!("{}.*", db.name()), "");
    let text = std::fs::read_to_string(&config).unwrap().replace(CDC_PASSWORD, "not-the-password");
    std::fs::write(&config, text).unwrap();
    let error = run_fails(&config);
    assert!(error.contains("refused user 'cdc'") && error.contains("password"), "{error}");
    assert!(!error.contains("not-the-password"), "the password is never printed: {error}");
    nothing_written(dir.path());
}

#[test]
fn binlog_format_statement_is_refused_with_the_setting_to_change() {
    let options = MariaDbOptions { binlog_format: "STATEMENT".into(), ..Default::default() };
    let Some(server) = require("MariaDB", MariaDb::start_with(options)) else { return };
    server.create_user(CDC_USER, CDC_PASSWORD, &["REPLICATION SLAVE, REPLICATION CLIENT, SELECT ON *.*"]).unwrap();
    let db = server.create_database().unwrap();
    db.exec("CREATE TABLE t (id INT PRIMARY KEY)").unwrap();
    let dir = test_dir();
    let config = write_config(dir.path(), &server, &format!("{}.*", db.name()), "");
    let error = run_fails(&config);
    assert!(error.contains("binlog_format") && error.contains("ROW"), "{error}");
    nothing_written(dir.path());
}

#[test]
fn a_missing_table_is_named() {
    let Some(server) = mariadb() else { return };
    let db = server.create_database().unwrap();
    let dir = test_dir();
    let config = write_config(dir.path(), &server, &format!("{}.no_such_table", db.name()), "");
    let error = run_fails(&config);
    assert!(error.contains("no_such_table"), "{error}");
    nothing_written(dir.path());
}

#[test]
fn a_malformed_config_names_the_key_and_writes_nothing() {
    let dir = test_dir();
    let path = dir.path().join("pipeline.toml");
    std::fs::write(
        &path,
        "[pipeline]\nname = \"x\"\nbatch_rows = 5\n[source.mysql]\nuser = \"u\"\ninclude = [\"a.*\"]\n[sink.delta]\nroot = \"lake\"\n",
    )
    .unwrap();
    let error = run_fails(&path);
    assert!(error.contains("batch_rows"), "{error}");
    std::fs::write(&path, "[pipeline\nname = \"x\"").unwrap();
    let error = run_fails(&path);
    assert!(error.contains("pipeline.toml"), "{error}");
    nothing_written(dir.path());
}

/// Writes `content` into `dir/name` with permission bits `mode`.
fn secret_file(dir: &std::path::Path, name: &str, content: &str, mode: u32) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

/// Replaces the config's `password = ...` with `password_file = <file>` (or removes it when `None`).
fn use_password_file(config: &std::path::Path, file: Option<&std::path::Path>) {
    let line = file.map(|f| format!("password_file = {:?}", f.display().to_string())).unwrap_or_default();
    let text = std::fs::read_to_string(config).unwrap().replace(&format!("password = \"{CDC_PASSWORD}\""), &line);
    std::fs::write(config, text).unwrap();
}

/// A config for a source nobody listens on: a password error must come before any connection.
fn config_without_server(dir: &std::path::Path, source_extra: &str) -> std::path::PathBuf {
    let path = dir.join("pipeline.toml");
    let text = format!(
        "[pipeline]\nname = \"x\"\n[source.mysql]\nhost = \"127.0.0.1\"\nport = 1\nuser = \"cdc\"\n{source_extra}\n\
         include = [\"a.*\"]\n[sink.delta]\nroot = {:?}\n",
        dir.join("lake").display().to_string()
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// `tributary run` with `env`: exit code 1 and exactly one line on stderr, returned.
fn run_fails_with_one_line(config: &std::path::Path, env: &[(&str, &std::path::Path)]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args(["run", "--config", config.to_str().unwrap()])
        .envs(env.iter().copied())
        .env_remove("TRIBUTARY_SOURCE_PASSWORD")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "stderr:\n{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line only; stderr:\n{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    stderr.trim().to_string()
}

#[test]
fn a_missing_password_file_is_one_line_naming_the_path_and_the_fix() {
    let dir = test_dir();
    let missing = dir.path().join("no-such-secret");
    let config = config_without_server(dir.path(), &format!("password_file = {:?}", missing.display().to_string()));
    let error = run_fails_with_one_line(&config, &[]);
    assert!(
        error.contains("source.password_file: cannot read")
            && error.contains("no-such-secret")
            && error.contains("No such file or directory")
            && error.contains("create it"),
        "{error}"
    );
    // The environment variable names itself.
    let config = config_without_server(dir.path(), "");
    let error = run_fails_with_one_line(&config, &[("TRIBUTARY_SOURCE_PASSWORD_FILE", &missing)]);
    assert!(error.contains("TRIBUTARY_SOURCE_PASSWORD_FILE: cannot read"), "{error}");
    nothing_written(dir.path());
}

#[test]
fn an_empty_password_file_or_two_passwords_are_one_line_each() {
    let dir = test_dir();
    let empty = secret_file(dir.path(), "empty", "\n", 0o600);
    let config = config_without_server(dir.path(), &format!("password_file = {:?}", empty.display().to_string()));
    let error = run_fails_with_one_line(&config, &[]);
    assert!(
        error.contains("source.password_file") && error.contains("is empty; write the password into it"),
        "{error}"
    );
    let full = secret_file(dir.path(), "pw", "hunter2-secret\n", 0o600);
    let config = config_without_server(
        dir.path(),
        &format!("password = \"other-secret\"\npassword_file = {:?}", full.display().to_string()),
    );
    let error = run_fails_with_one_line(&config, &[]);
    assert!(error.contains("source.password and source.password_file are both set; keep one"), "{error}");
    assert!(!error.contains("hunter2-secret") && !error.contains("other-secret"), "{error}");
    nothing_written(dir.path());
}

#[test]
fn a_password_file_is_read_and_the_password_shows_in_no_log_metric_or_status() {
    let Some(server) = mariadb() else { return };
    let db = server.create_database().unwrap();
    db.exec("CREATE TABLE t (id INT PRIMARY KEY, v INT); INSERT INTO t VALUES (1, 1)").unwrap();
    let dir = test_dir();
    let config = write_config(dir.path(), &server, &format!("{}.t", db.name()), "");
    let address = format!("127.0.0.1:{}", tributary_testkit::ports::free_loopback_port().unwrap());
    let text = std::fs::read_to_string(&config).unwrap().replace("127.0.0.1:0", &address);
    std::fs::write(&config, text).unwrap();
    // World-readable, with the trailing newline `echo` leaves: read, and warned about.
    let file = secret_file(dir.path(), "cdc-password", &format!("{CDC_PASSWORD}\n"), 0o644);
    use_password_file(&config, Some(&file));
    assert!(!std::fs::read_to_string(&config).unwrap().contains(CDC_PASSWORD));
    let path = table_path(dir.path(), db.name(), "t");
    let mut pipeline = Pipeline::start(&config);
    wait_committed(&mut pipeline, &path, master_version(&server));
    db.exec("INSERT INTO t VALUES (2, 2)").unwrap();
    wait_committed(&mut pipeline, &path, master_version(&server));
    let metrics = common::http::get(&address, "/metrics").body;
    assert!(metrics.contains("tributary_"), "{metrics}");
    let status_text = tributary(&["status", "--config", config.to_str().unwrap()]);
    let status_json = tributary(&["status", "--config", config.to_str().unwrap(), "--format", "json"]);
    assert!(pipeline.stop().success());
    let log = pipeline_log(dir.path());
    assert!(log.contains("is readable by every user (mode 644); run chmod 600"), "{log}");
    for (what, text) in [
        ("log", log),
        ("metrics", metrics),
        ("status", String::from_utf8_lossy(&status_text.stdout).to_string()),
        ("status json", String::from_utf8_lossy(&status_json.stdout).to_string()),
        ("status stderr", String::from_utf8_lossy(&status_json.stderr).to_string()),
    ] {
        assert!(!text.contains(CDC_PASSWORD), "the password is in the {what}:\n{text}");
    }
    assert!(status_json.status.success(), "{}", String::from_utf8_lossy(&status_json.stderr));
    // The same file through the environment (mode 600: no warning), config without any password.
    std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    use_password_file(&config, None);
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace(&format!("password_file = {:?}", file.display().to_string()), "");
    std::fs::write(&config, text).unwrap();
    let mut pipeline = Pipeline::start_with_env(&config, &[("TRIBUTARY_SOURCE_PASSWORD_FILE", &file)]);
    db.exec("INSERT INTO t VALUES (3, 3)").unwrap();
    wait_committed(&mut pipeline, &path, master_version(&server));
    assert!(pipeline.stop().success());
    assert_eq!(pipeline_log(dir.path()).matches("readable by every user").count(), 1, "mode 600: no second warning");
}

/// Every pipeline log in `dir`, concatenated.
fn pipeline_log(dir: &std::path::Path) -> String {
    let mut logs: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("pipeline-"))
        .collect();
    logs.sort();
    logs.iter().map(|p| std::fs::read_to_string(p).unwrap()).collect::<Vec<_>>().join("\n")
}
