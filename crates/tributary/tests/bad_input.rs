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
