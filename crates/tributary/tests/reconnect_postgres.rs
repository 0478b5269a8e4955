//! PostgreSQL sources reconnect in process: a continuous mixed workload runs
//! while the server is restarted 20 times (fast shutdown) and the walsender
//! is terminated (`pg_terminate_backend`); the pipeline never exits, the
//! reconnect counter counts every loss, the slot survives, and at the end
//! mirror = source and the change feed holds each change exactly once. Then
//! kill -9 while the server is down, a restart of the pipeline, and Spark
//! reads the result.

mod common;

use common::pg::*;
use common::workload::{assert_feed_exact, id_values, listen_on_free_port, wait_metric, Workload};
use common::*;
use std::time::{Duration, Instant};
use tributary_testkit::postgres::PgDatabase;

const RESTARTS: u64 = 20;
const INITIAL_ROWS: u64 = 200;

fn assert_mirror_exact(python: &std::path::Path, path: &std::path::Path, db: &PgDatabase<'_>, what: &str) {
    let source_md5 = pg_lines(db, "SELECT id, md5(concat_ws('|', id, v, w)) FROM t ORDER BY id");
    assert_eq!(mirror_checksums(python, path), source_md5, "mirror = source {what}");
    let source = id_values(&pg_lines(db, "SELECT id, v FROM t"));
    assert_feed_exact(&change_feed(python, path, 0), &source);
}

/// Waits until every change made so far to `t` is in the Delta table (the
/// workload keeps changing `t`, so its position moves past `lsn_now`).
fn wait_caught_up(pipeline: &mut Pipeline, path: &std::path::Path, db: &PgDatabase<'_>) {
    wait_past(pipeline, path, lsn_now(db));
}

#[test]
fn restarts_and_terminated_walsenders_are_ridden_through_exactly_once() {
    let Some(python) = python() else { return };
    let Some(server) = postgres() else { return };
    let db = server.create_database().unwrap();
    sql(&db, "CREATE TABLE t (id BIGINT PRIMARY KEY, v INT NOT NULL, w TEXT)");
    sql(&db, &format!("INSERT INTO t SELECT i, 0, 'w' || i FROM generate_series(1, {INITIAL_ROWS}) AS i"));
    let dir = test_dir();
    let config = write_pg_config(dir.path(), &server, &db, "public.*", "");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("batch_max_wait_ms = 200", "batch_max_wait_ms = 200\nreconnect_max_secs = 2"))
        .unwrap();
    let address = listen_on_free_port(&config);
    let path = table_path(dir.path(), "public", "t");
    let mut pipeline = Pipeline::start(&config);
    wait_past(&mut pipeline, &path, lsn_now(&db) - 1);
    wait_metric(&address, "tributary_source_connected", 1.0, Duration::from_secs(10), &mut pipeline);

    let (port, database) = (server.port(), db.name().to_string());
    let workload = Workload::start(INITIAL_ROWS, move |sql| pg_try_exec(port, &database, sql));
    let mut back_to_caught_up = Vec::new();
    let mut shutdowns = Vec::new();
    for restart in 1..=RESTARTS {
        workload.wait_more(5);
        let shutdown = server.restart(Duration::from_millis(300)).expect("restart PostgreSQL");
        shutdowns.push(shutdown.as_secs_f64());
        let back = Instant::now();
        let total = "tributary_source_reconnects_total";
        wait_metric(&address, total, restart as f64, Duration::from_secs(30), &mut pipeline);
        wait_metric(&address, "tributary_source_connected", 1.0, Duration::from_secs(30), &mut pipeline);
        workload.wait_more(1);
        wait_caught_up(&mut pipeline, &path, &db);
        back_to_caught_up.push(back.elapsed().as_secs_f64());
    }
    eprintln!("server accepting connections -> lake caught up, per restart (s): {back_to_caught_up:.2?}");
    eprintln!("fast shutdown with the pipeline connected, per restart (s): {shutdowns:.2?}");
    let slowest = shutdowns.iter().cloned().fold(0.0, f64::max);
    assert!(slowest < 10.0, "a fast shutdown waited {slowest:.1} s for the pipeline to confirm the end of the WAL");

    // The walsender terminated from the server side.
    let terminated = db
        .exec(&format!(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE backend_type = 'walsender' AND datname = '{}'",
            db.name()
        ))
        .unwrap();
    assert_eq!(terminated.trim(), "1", "one walsender of the pipeline");
    let total = "tributary_source_reconnects_total";
    wait_metric(&address, total, (RESTARTS + 1) as f64, Duration::from_secs(30), &mut pipeline);
    wait_metric(&address, "tributary_source_connected", 1.0, Duration::from_secs(30), &mut pipeline);

    workload.wait_more(5);
    let confirmed = workload.finish();
    eprintln!("{confirmed} workload transactions confirmed by the server");
    let before = change(&db, "INSERT INTO t VALUES (1000000, 0, 'a'), (1000001, 0, 'b')");
    wait_past(&mut pipeline, &path, before);
    pipeline.assert_running();
    assert!(pipeline.log_text().contains("lost the source connection; reconnecting"), "one line per loss in the log");
    assert_eq!(slot_count(&db), 1, "the same slot throughout");
    assert_mirror_exact(&python, &path, &db, "after 20 restarts and a terminated walsender");

    // kill -9 while the server is down; the server comes back first, the pipeline after.
    sql(&db, "UPDATE t SET v = v + 1 WHERE id = 1000001; DELETE FROM t WHERE id = 1000000");
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(700));
        pipeline.kill9();
    });
    server.restart(Duration::from_millis(1500)).expect("restart PostgreSQL");
    killer.join().unwrap();
    let before = change(&db, "UPDATE t SET v = v + 1 WHERE id = 1000001");
    let mut pipeline = Pipeline::start(&config);
    wait_past(&mut pipeline, &path, before);
    assert_mirror_exact(&python, &path, &db, "after kill -9 across a restart");
    assert!(pipeline.stop().success());

    if let Some(spark) = spark("reconnect") {
        let rows: u64 = pg_lines(&db, "SELECT count(*) FROM t")[0].parse().unwrap();
        assert_eq!(spark.count(&path).unwrap(), rows, "Spark reads the mirror");
        let feed = change_feed(&python, &path, 0).len() as u64;
        assert_eq!(spark.cdf_count(&path, 0, None).unwrap(), feed, "Spark reads the same change feed");
    }
}

/// A Delta commit that takes longer than the server's `wal_sender_timeout`
/// (held by the test failpoint) while changes keep coming: the reader's
/// channel fills, the connection goes unanswered and the server drops it; the
/// pipeline reconnects once the commit ends, and nothing is lost or doubled.
#[test]
fn a_commit_longer_than_wal_sender_timeout_ends_in_a_clean_reconnect() {
    if !failpoints() {
        return;
    }
    let Some(python) = python() else { return };
    let Some(server) = postgres() else { return };
    server.exec("ALTER SYSTEM SET wal_sender_timeout = '2s'").unwrap();
    server.exec("SELECT pg_reload_conf()").unwrap();
    let db = server.create_database().unwrap();
    sql(&db, "CREATE TABLE t (id BIGINT PRIMARY KEY, v INT NOT NULL, w TEXT)");
    sql(&db, &format!("INSERT INTO t SELECT i, 0, 'w' || i FROM generate_series(1, {INITIAL_ROWS}) AS i"));
    let dir = test_dir();
    let config = write_pg_config(dir.path(), &server, &db, "public.t", "");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("batch_max_wait_ms = 200", "batch_max_wait_ms = 200\nreconnect_max_secs = 1"))
        .unwrap();
    let address = listen_on_free_port(&config);
    let path = table_path(dir.path(), "public", "t");
    let hold = dir.path().join("hold-commit");
    let mut pipeline = Pipeline::start_with_env(&config, &[("TRIBUTARY_FAILPOINT_HOLD_COMMIT_FILE", &hold)]);
    wait_past(&mut pipeline, &path, lsn_now(&db) - 1);

    let (port, database) = (server.port(), db.name().to_string());
    let workload = Workload::start(INITIAL_ROWS, move |sql| pg_try_exec(port, &database, sql));
    workload.wait_more(5);
    std::fs::write(&hold, b"").unwrap();
    // Many more transactions than the reader's channel holds, over several timeouts.
    workload.wait_more(300);
    std::thread::sleep(Duration::from_secs(6));
    std::fs::remove_file(&hold).unwrap();
    let total = "tributary_source_reconnects_total";
    wait_metric(&address, total, 1.0, Duration::from_secs(30), &mut pipeline);
    wait_metric(&address, "tributary_source_connected", 1.0, Duration::from_secs(30), &mut pipeline);
    workload.wait_more(5);
    workload.finish();
    let before = change(&db, "INSERT INTO t VALUES (1000000, 0, 'last')");
    wait_past(&mut pipeline, &path, before);
    let log = pipeline.log_text();
    let lost = log.lines().find(|l| l.contains("lost the source connection")).expect("the loss is logged");
    eprintln!("{lost}");
    assert_mirror_exact(&python, &path, &db, "after a commit held past wal_sender_timeout");
    assert!(pipeline.stop().success());
}

/// The database ends idle sessions after one second (`idle_session_timeout`,
/// shorter than `heartbeat_secs`): Tributary's own SQL sessions, held idle
/// between uses, turn it off for themselves, so the start (slot, Delta
/// tables, copy) and idle streaming live through it. Then the heartbeat's
/// session is terminated between heartbeats while the replication connection
/// lives on: the heartbeat opens a new session, so on an idle database the
/// slot still moves past WAL written by other tables.
#[test]
fn heartbeats_survive_a_killed_sql_session_and_the_idle_slot_keeps_moving() {
    let Some(server) = postgres() else { return };
    let db = server.create_database().unwrap();
    sql(&db, "CREATE TABLE watched (id INT PRIMARY KEY); CREATE TABLE other (id INT PRIMARY KEY, pad TEXT)");
    db.exec(&format!("ALTER DATABASE {} SET idle_session_timeout = '1s'", db.name())).unwrap();
    let dir = test_dir();
    let config = write_pg_config(dir.path(), &server, &db, "public.watched", "");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("heartbeat_secs = 1", "heartbeat_secs = 3")).unwrap();
    let path = table_path(dir.path(), "public", "watched");
    let mut pipeline = Pipeline::start(&config);
    wait_committed(&mut pipeline, &path, 1);
    // Several heartbeat periods, each longer than the role's idle timeout.
    std::thread::sleep(Duration::from_secs(7));
    pipeline.assert_running();
    let terminated = server
        .exec(&format!(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '{}' \
             AND backend_type = 'client backend' AND pid <> pg_backend_pid() AND query LIKE '%pg_logical_emit_message%'",
            db.name()
        ))
        .unwrap();
    assert_eq!(terminated.trim(), "1", "the heartbeat's session is found and terminated");
    std::thread::sleep(Duration::from_secs(4));
    sql(&db, "INSERT INTO other SELECT i, repeat(md5(i::text), 20) FROM generate_series(1, 5000) AS i");
    let written = lsn_now(&db);
    wait_slot_confirmed(&db, db.name(), written);
    pipeline.assert_running();
    let log = pipeline.log_text();
    assert!(!log.contains("idle-session timeout"), "no session of Tributary's was ended by idle_session_timeout");
    assert!(log.contains("terminating connection due to administrator command"), "the heartbeat's session was killed");
    assert!(pipeline.stop().success());
}

/// The replication session that created the slot holds its exported
/// snapshot open, idle in a transaction, until streaming starts after the
/// copy; the database ends such sessions after one second
/// (`idle_in_transaction_session_timeout`, which that session cannot turn
/// off for itself). The start is held past it after the copy: the slot and
/// the copy are durable, so the session is opened again and streaming
/// starts exactly once.
#[test]
fn a_replication_session_ended_while_the_copy_ran_is_opened_again() {
    if !failpoints() {
        return;
    }
    let Some(python) = python() else { return };
    let Some(server) = postgres() else { return };
    let db = server.create_database().unwrap();
    sql(&db, "CREATE TABLE t (id BIGINT PRIMARY KEY, v INT NOT NULL, w TEXT)");
    sql(&db, &format!("INSERT INTO t SELECT i, 0, 'w' || i FROM generate_series(1, {INITIAL_ROWS}) AS i"));
    db.exec(&format!("ALTER DATABASE {} SET idle_in_transaction_session_timeout = '1s'", db.name())).unwrap();
    let dir = test_dir();
    let config = write_pg_config(dir.path(), &server, &db, "public.t", "");
    let path = table_path(dir.path(), "public", "t");
    let hold = dir.path().join("hold-start");
    std::fs::write(&hold, b"").unwrap();
    let mut pipeline = Pipeline::start_with_env(&config, &[("TRIBUTARY_FAILPOINT_HOLD_START_FILE", &hold)]);
    wait_committed(&mut pipeline, &path, 1);
    let walsenders = || {
        db.exec(&format!(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = '{}' AND backend_type = 'walsender'",
            db.name()
        ))
        .unwrap()
        .trim()
        .to_string()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while walsenders() != "0" {
        assert!(Instant::now() < deadline, "the server ends the idle replication session");
        std::thread::sleep(Duration::from_millis(200));
    }
    change(&db, "UPDATE t SET v = 1 WHERE id = 1");
    std::fs::remove_file(&hold).unwrap();
    let last = change(&db, "INSERT INTO t VALUES (1000000, 0, 'last')");
    wait_past(&mut pipeline, &path, last);
    pipeline.assert_running();
    let log = pipeline.log_text();
    let lost =
        log.lines().find(|l| l.contains("lost the source connection")).expect("the ended session is reconnected");
    eprintln!("{lost}");
    assert!(lost.contains("idle-in-transaction timeout"), "the server's timeout is the cause");
    assert_mirror_exact(&python, &path, &db, "after the replication session was opened again");
    assert!(pipeline.stop().success());
}
