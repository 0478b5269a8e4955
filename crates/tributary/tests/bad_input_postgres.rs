//! Bad PostgreSQL input gets one line naming the cause and what to change, a
//! non-zero exit, nothing written under the lake root and no replication
//! slot (or publication) left behind; `tributary check` says the same. A
//! table without primary key but with REPLICA IDENTITY FULL is accepted and
//! mirrored as an append-only changelog; one whose REPLICA IDENTITY is an index
//! other than its primary key is mirrored by that index, the columns
//! PostgreSQL sends for its deletes.

mod common;

use common::pg::*;
use common::*;
use serde_json::{json, Value as Json};
use std::path::Path;
use tributary_testkit::postgres::{PgDatabase, PostgresOptions, REPLICATION_PASSWORD};
use tributary_testkit::{require, Postgres};

/// Nothing at all under the lake root, no slot and no publication on the database.
fn nothing_left(dir: &Path, db: Option<&PgDatabase<'_>>) {
    let lake = dir.join("lake");
    let entries: Vec<_> = std::fs::read_dir(&lake).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    assert!(entries.is_empty(), "nothing may be written under the lake root: {entries:?}");
    if let Some(db) = db {
        assert_eq!(slot_count(db), 0, "no replication slot may be left behind");
        let publications = db.exec("SELECT count(*) FROM pg_publication").unwrap();
        assert_eq!(publications.trim(), "0", "no publication may be left behind");
    }
}

fn replace_in(config: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(config).unwrap();
    assert!(text.contains(from), "{from} in {text}");
    std::fs::write(config, text.replace(from, to)).unwrap();
}

#[test]
fn a_wrong_password_is_one_line_naming_the_user_and_the_fix() {
    let Some(server) = postgres() else { return };
    let db = server.create_database().unwrap();
    sql(&db, "CREATE TABLE t (id INT PRIMARY KEY)");
    let dir = test_dir();
    let config = write_pg_config(dir.path(), &server, &db, "public.*", "");
    replace_in(&config, &format!("password = \"{REPLICATION_PASSWORD}\""), "password = \"not-the-password\"");
    let error = run_and_check_fail(&config, |e| e.contains("refused user 'replicator'") && e.contains("password"));
    assert!(!error.contains("not-the-password"), "the password is never printed: {error}");
    nothing_left(dir.path(), Some(&db));
}

#[test]
fn wal_level_replica_is_refused_with_the_setting_to_change() {
    let options = PostgresOptions { wal_level: "replica".into(), ..Default::default() };
    let Some(server) = require("PostgreSQL", Postgres::start_with(options)) else { return };
    let db = server.create_database().unwrap();
    sql(&db, "CREATE TABLE t (id INT PRIMARY KEY)");
    let dir = test_dir();
    let config = write_pg_config(dir.path(), &server, &db, "public.*", "");
    run_and_check_fail(&config, |e| {
        e.contains("wal_level") && e.contains("'replica'") && e.contains("wal_level = logical") && e.contains("restart")
    });
    nothing_left(dir.path(), Some(&db));
}

#[test]
fn settings_that_print_values_lossily_or_unreadably_are_refused() {
    let Some(server) = postgres() else { return };
    let db = server.create_database().unwrap();
    sql(&db, "CREATE TABLE t (id INT PRIMARY KEY, x DOUBLE PRECISION, d DATE)");
    let dir = test_dir();
    let config = write_pg_config(dir.path(), &server, &db, "public.*", "");
    // Doubles printed with 15 digits: 1.7976931348623157e308 would come back as infinity.
    db.exec(&format!("ALTER ROLE replicator IN DATABASE \"{}\" SET extra_float_digits = 0", db.name())).unwrap();
    run_and_check_fail(&config, |e| {
        e.contains("extra_float_digits is '0'") && e.contains("ALTER ROLE replicator SET extra_float_digits = 1")
    });
    db.exec(&format!("ALTER ROLE replicator IN DATABASE \"{}\" RESET extra_float_digits", db.name())).unwrap();
    db.exec(&format!("ALTER DATABASE \"{}\" SET DateStyle = 'SQL, DMY'", db.name())).unwrap();
    run_and_check_fail(&config, |e| e.contains("DateStyle is 'SQL, DMY'") && e.contains("'ISO, MDY'"));
    nothing_left(dir.path(), Some(&db));
}

#[test]
fn a_role_without_replication_is_refused_with_the_grant_to_run() {
    let Some(server) = postgres() else { return };
    let db = server.create_database().unwrap();
    sql(&db, "CREATE TABLE t (id INT PRIMARY KEY)");
    server.exec("CREATE ROLE plain_user WITH LOGIN PASSWORD 'plain-pw'").unwrap();
    server.exec(&format!("GRANT ALL ON DATABASE \"{}\" TO plain_user", db.name())).unwrap();
    db.exec("GRANT SELECT ON ALL TABLES IN SCHEMA public TO plain_user").unwrap();
    let dir = test_dir();
    let config = write_pg_config(dir.path(), &server, &db, "public.*", "");
    replace_in(&config, "user = \"replicator\"", "user = \"plain_user\"");
    replace_in(&config, &format!("password = \"{REPLICATION_PASSWORD}\""), "password = \"plain-pw\"");
    run_and_check_fail(&config, |e| e.contains("'plain_user'") && e.contains("ALTER ROLE plain_user WITH REPLICATION"));
    nothing_left(dir.path(), Some(&db));
}

#[test]
fn a_role_without_login_or_a_missing_database_is_named() {
    let Some(server) = postgres() else { return };
    let db = server.create_database().unwrap();
    sql(&db, "CREATE TABLE t (id INT PRIMARY KEY)");
    server.exec("CREATE ROLE no_login WITH NOLOGIN REPLICATION PASSWORD 'no-login-pw'").unwrap();
    let dir = test_dir();
    let config = write_pg_config(dir.path(), &server, &db, "public.*", "");
    let text = std::fs::read_to_string(&config).unwrap();
    replace_in(&config, "user = \"replicator\"", "user = \"no_login\"");
    replace_in(&config, &format!("password = \"{REPLICATION_PASSWORD}\""), "password = \"no-login-pw\"");
    run_and_check_fail(&config, |e| {
        e.contains("refused the login of user 'no_login'")
            && e.contains("not permitted to log in")
            && e.contains("ALTER ROLE no_login WITH LOGIN")
    });
    std::fs::write(&config, text.replace(&format!("database = \"{}\"", db.name()), "database = \"no_such_db\""))
        .unwrap();
    run_and_check_fail(&config, |e| {
        e.contains("database 'no_such_db' does not exist") && e.contains("source.database")
    });
    nothing_left(dir.path(), Some(&db));
}

#[test]
fn a_table_without_key_or_replica_identity_is_named_with_the_fixes() {
    let Some(server) = postgres() else { return };
    let db = server.create_database().unwrap();
    // A good table next to the bad one: neither is written.
    sql(&db, "CREATE TABLE good (id INT PRIMARY KEY); INSERT INTO good VALUES (1)");
    sql(&db, "CREATE TABLE events (id INT, body TEXT); INSERT INTO events VALUES (1, 'x')");
    let dir = test_dir();
    let config = write_pg_config(dir.path(), &server, &db, "public.*", "");
    run_and_check_fail(&config, |e| {
        e.contains("public.events")
            && e.contains("no primary key")
            && e.contains("REPLICA IDENTITY DEFAULT")
            && e.contains("ALTER TABLE public.events REPLICA IDENTITY FULL")
            && e.contains("source.exclude")
    });
    nothing_left(dir.path(), Some(&db));
    // The statements the server would refuse once the table is published still work.
    sql(&db, "UPDATE events SET body = 'y'; DELETE FROM events");
}

#[test]
fn an_unreachable_port_is_a_clear_connect_error() {
    let Some(server) = postgres() else { return };
    let db = server.create_database().unwrap();
    let dir = test_dir();
    let config = write_pg_config(dir.path(), &server, &db, "public.*", "");
    let port = tributary_testkit::ports::free_loopback_port().unwrap();
    replace_in(&config, &format!("port = {}", server.port()), &format!("port = {port}"));
    let started = std::time::Instant::now();
    run_and_check_fail(&config, |e| {
        e.contains(&format!("cannot connect to PostgreSQL at 127.0.0.1:{port}"))
            && e.contains("refused")
            && e.contains("source.host / source.port")
    });
    assert!(started.elapsed().as_secs() < 30, "a refused connection fails fast: {:?}", started.elapsed());
    nothing_left(dir.path(), Some(&db));
}

/// `(op, id, body)` of changelog rows, in commit order.
fn changelog(python: &Path, path: &Path) -> Vec<(String, i64, Json)> {
    let json = read(python, &["rows", path.to_str().unwrap()]);
    let mut rows: Vec<&serde_json::Map<String, Json>> =
        json["rows"].as_array().unwrap().iter().map(|r| r.as_object().unwrap()).collect();
    rows.sort_by_key(|r| (r["_tributary_source_version"].as_i64().unwrap(), r["id"].as_i64().unwrap()));
    rows.iter()
        .map(|r| (r["_tributary_op"].as_str().unwrap().to_string(), r["id"].as_i64().unwrap(), r["body"].clone()))
        .collect()
}

#[test]
fn replica_identity_full_without_key_is_an_append_only_changelog() {
    let Some(server) = postgres() else { return };
    let Some(python) = python() else { return };
    let db = server.create_database().unwrap();
    sql(&db, "CREATE TABLE events (id INT, body TEXT); ALTER TABLE events REPLICA IDENTITY FULL");
    sql(&db, "INSERT INTO events VALUES (1, 'a'), (2, 'b')");
    let dir = test_dir();
    let config = write_pg_config(dir.path(), &server, &db, "public.events", "");
    let check = tributary(&["check", "--config", config.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "check: {stdout}{}", String::from_utf8_lossy(&check.stderr));
    assert!(stdout.contains("table public.events: 2 columns, append-only changelog (no primary key)"), "{stdout}");

    let path = table_path(dir.path(), "public", "events");
    let mut pipeline = Pipeline::start(&config);
    wait_committed(&mut pipeline, &path, 1);
    change(&db, "INSERT INTO events VALUES (3, 'c')");
    change(&db, "UPDATE events SET body = 'bb' WHERE id = 2");
    // Rows that are exact duplicates: each change is still one row.
    change(&db, "INSERT INTO events VALUES (4, 'd'), (4, 'd')");
    let lsn = change(&db, "DELETE FROM events WHERE id IN (1, 4)");
    wait_past(&mut pipeline, &path, lsn);
    assert!(pipeline.stop().success());

    // Snapshot rows, then one row per change in commit order; a delete carries the old row.
    let log = changelog(&python, &path);
    let want: Vec<(&str, i64, &str)> = vec![
        ("r", 1, "a"),
        ("r", 2, "b"),
        ("c", 3, "c"),
        ("u", 2, "bb"),
        ("c", 4, "d"),
        ("c", 4, "d"),
        ("d", 1, "a"),
        ("d", 4, "d"),
        ("d", 4, "d"),
    ];
    let want: Vec<(String, i64, Json)> = want.into_iter().map(|(op, id, body)| (op.into(), id, json!(body))).collect();
    assert_eq!(log, want);
}

#[test]
fn replica_identity_using_an_index_keys_the_mirror_by_that_index() {
    let Some(server) = postgres() else { return };
    let Some(python) = python() else { return };
    let db = server.create_database().unwrap();
    sql(
        &db,
        "CREATE TABLE accounts (id INT PRIMARY KEY, email TEXT NOT NULL, name TEXT); \
         CREATE UNIQUE INDEX accounts_email ON accounts (email); \
         ALTER TABLE accounts REPLICA IDENTITY USING INDEX accounts_email; \
         INSERT INTO accounts VALUES (1, 'a@x', 'a'), (2, 'b@x', 'b'), (3, 'c@x', 'c')",
    );
    let dir = test_dir();
    let config = write_pg_config(dir.path(), &server, &db, "public.accounts", "");
    let path = table_path(dir.path(), "public", "accounts");
    let mut pipeline = Pipeline::start(&config);
    wait_committed(&mut pipeline, &path, 1);
    change(&db, "INSERT INTO accounts VALUES (4, 'd@x', 'd')");
    change(&db, "UPDATE accounts SET name = 'bb' WHERE id = 2");
    change(&db, "UPDATE accounts SET email = 'cc@x' WHERE id = 3");
    change(&db, "DELETE FROM accounts WHERE id = 1");
    let lsn = change(&db, "DELETE FROM accounts WHERE id = 4");
    wait_past(&mut pipeline, &path, lsn);
    assert!(pipeline.stop().success());
    let rows: Vec<(i64, String, String)> = mirror_rows(&python, &path)
        .iter()
        .map(|r| {
            (
                r["id"].as_i64().unwrap(),
                r["email"].as_str().unwrap().to_string(),
                r["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(rows, [(2, "b@x".into(), "bb".into()), (3, "cc@x".into(), "c".into())]);
}

#[test]
fn a_multi_dimensional_array_value_stops_the_pipeline_naming_the_column() {
    let Some(server) = postgres() else { return };
    let Some(python) = python() else { return };
    let db = server.create_database().unwrap();
    sql(&db, "CREATE TABLE grid (id INT PRIMARY KEY, cells INT[]); INSERT INTO grid VALUES (1, '{1,2}')");
    let dir = test_dir();
    let config = write_pg_config(dir.path(), &server, &db, "public.grid", "");
    let path = table_path(dir.path(), "public", "grid");
    let mut pipeline = Pipeline::start(&config);
    wait_committed(&mut pipeline, &path, 1);
    let lsn = change(&db, "INSERT INTO grid VALUES (2, '{3}')");
    wait_past(&mut pipeline, &path, lsn);
    // Any int[] column may hold a 2-D value: refused rather than flattened.
    change(&db, "INSERT INTO grid VALUES (3, '{{1,2},{3,4}}')");
    let status = pipeline.wait_exit(CATCH_UP).unwrap_or_else(|| panic!("still running; log:\n{}", pipeline.log_text()));
    assert!(!status.success());
    let log = pipeline.log_text();
    let error = log.lines().rfind(|l| l.starts_with("error:")).unwrap_or_else(|| panic!("no error line:\n{log}"));
    assert!(
        error.contains("public.grid") && error.contains("column cells") && error.contains("multi-dimensional"),
        "{error}"
    );
    let rows = mirror_rows(&python, &path);
    assert_eq!(rows.iter().map(|r| r["id"].as_i64().unwrap()).collect::<Vec<_>>(), [1, 2], "nothing after it");
}

#[test]
fn a_publication_publishing_generated_columns_is_refused_with_the_alter_to_run() {
    let Some(server) = postgres() else { return };
    if server.major() < 18 {
        eprintln!(
            "publish_generated_columns exists from PostgreSQL 18; this server is {}: nothing to refuse",
            server.major()
        );
        return;
    }
    let db = server.create_database().unwrap();
    sql(&db, "CREATE TABLE g (id INT PRIMARY KEY, a INT, doubled INT GENERATED ALWAYS AS (a * 2) STORED)");
    // The publication write_pg_config names: the database's name.
    sql(&db, &format!("CREATE PUBLICATION \"{}\" FOR TABLE g WITH (publish_generated_columns = stored)", db.name()));
    let dir = test_dir();
    let config = write_pg_config(dir.path(), &server, &db, "public.g", "");
    run_and_check_fail(&config, |e| {
        e.contains("publishes generated columns") && e.contains("SET (publish_generated_columns = none)")
    });
    let lake = dir.path().join("lake");
    let entries: Vec<_> = std::fs::read_dir(&lake).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    assert!(entries.is_empty(), "nothing may be written under the lake root: {entries:?}");
    assert_eq!(slot_count(&db), 0, "no replication slot may be left behind");
}

#[test]
fn a_password_file_logs_in_and_a_missing_one_is_one_line() {
    let Some(server) = postgres() else { return };
    let db = server.create_database().unwrap();
    sql(&db, "CREATE TABLE t (id INT PRIMARY KEY)");
    let dir = test_dir();
    let config = write_pg_config(dir.path(), &server, &db, "public.*", "");
    let file = dir.path().join("replicator-password");
    std::fs::write(&file, format!("{REPLICATION_PASSWORD}\n")).unwrap();
    std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let line = format!("password_file = {:?}", file.display().to_string());
    replace_in(&config, &format!("password = \"{REPLICATION_PASSWORD}\""), &line);
    let out = tributary(&["check", "--config", config.to_str().unwrap()]);
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "check with password_file: {all}");
    assert!(!all.contains(REPLICATION_PASSWORD), "the password is never printed: {all}");
    replace_in(&config, &line, &line.replace("replicator-password", "missing"));
    let error =
        run_and_check_fail(&config, |e| e.contains("source.password_file: cannot read") && e.contains("missing"));
    assert!(!error.contains(REPLICATION_PASSWORD), "{error}");
    nothing_left(dir.path(), Some(&db));
}
