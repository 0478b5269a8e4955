//! The pipeline rides through source restarts and killed replication
//! connections in process: a continuous mixed workload (inserts, updates of
//! random keys, deletes) runs while the MariaDB server is restarted 20 times
//! and the binlog dump thread is killed; the process never exits, the
//! reconnect counter counts every loss, and at the end mirror = source and
//! the change feed holds each change exactly once. Then kill -9 while the
//! source is down, a restart of the pipeline, and Spark reads the result.

mod common;

use common::workload::{
    assert_mirror_and_feed_exact, create_workload_table, listen_on_free_port, mariadb_try_exec, wait_metric, Workload,
};
use common::*;
use std::time::{Duration, Instant};

const RESTARTS: u64 = 20;
const INITIAL_ROWS: u64 = 200;
const DB: &str = "reconnect";

#[test]
fn restarts_and_killed_dump_threads_are_ridden_through_exactly_once() {
    let Some(python) = python() else { return };
    let Some(mut server) = mariadb() else { return };
    // The server is this test's own (it restarts it): a plain database, no TestDatabase borrow.
    create_workload_table(&server, DB, INITIAL_ROWS);
    let dir = test_dir();
    let config = write_config(dir.path(), &server, &format!("{DB}.*"), "reconnect_max_secs = 2");
    let address = listen_on_free_port(&config);
    let path = table_path(dir.path(), DB, "t");
    let mut pipeline = Pipeline::start(&config);
    wait_committed(&mut pipeline, &path, master_version(&server));
    wait_metric(&address, "tributary_source_connected", 1.0, Duration::from_secs(10), &mut pipeline);

    let port = server.port();
    let workload = Workload::start(INITIAL_ROWS, move |sql| mariadb_try_exec(port, DB, sql));
    let mut back_to_caught_up = Vec::new();
    for restart in 1..=RESTARTS {
        workload.wait_more(5);
        server.restart(Duration::from_millis(300)).expect("restart MariaDB");
        let back = Instant::now();
        let total = "tributary_source_reconnects_total";
        wait_metric(&address, total, restart as f64, Duration::from_secs(30), &mut pipeline);
        wait_metric(&address, "tributary_source_connected", 1.0, Duration::from_secs(30), &mut pipeline);
        wait_committed(&mut pipeline, &path, master_version(&server));
        back_to_caught_up.push(back.elapsed().as_secs_f64());
    }
    eprintln!("server accepting connections -> lake caught up, per restart (s): {back_to_caught_up:.2?}");

    // The replication connection killed from the server side.
    let dump = source_lines(&server, "SELECT id FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%'");
    assert_eq!(dump.len(), 1, "one binlog dump thread: {dump:?}");
    server.exec(&format!("KILL {}", dump[0])).unwrap();
    let total = "tributary_source_reconnects_total";
    wait_metric(&address, total, (RESTARTS + 1) as f64, Duration::from_secs(30), &mut pipeline);
    wait_metric(&address, "tributary_source_connected", 1.0, Duration::from_secs(30), &mut pipeline);

    let confirmed = workload.finish();
    eprintln!("{confirmed} workload transactions confirmed by the server");
    wait_committed(&mut pipeline, &path, master_version(&server));
    pipeline.assert_running();
    assert!(pipeline.log_text().contains("lost the source connection; reconnecting"), "one line per loss in the log");
    assert_mirror_and_feed_exact(&python, &path, &server, DB, "after 20 restarts and a KILL");

    // kill -9 while the source is down; the source comes back first, the
    // pipeline after. The changes touch rows that surely exist (an UPDATE
    // matching no row writes no binlog event, and the waits need one).
    server.exec(&format!("INSERT INTO {DB}.t VALUES (1000000, 0, 'a'), (1000001, 0, 'b')")).unwrap();
    wait_committed(&mut pipeline, &path, master_version(&server));
    server
        .exec(&format!("UPDATE {DB}.t SET v = v + 1 WHERE id = 1000001; DELETE FROM {DB}.t WHERE id = 1000000"))
        .unwrap();
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(700));
        pipeline.kill9();
    });
    server.restart(Duration::from_millis(1500)).expect("restart MariaDB");
    killer.join().unwrap();
    server.exec(&format!("UPDATE {DB}.t SET v = v + 1 WHERE id = 1000001")).unwrap();
    let mut pipeline = Pipeline::start(&config);
    wait_committed(&mut pipeline, &path, master_version(&server));
    assert_mirror_and_feed_exact(&python, &path, &server, DB, "after kill -9 across a restart");
    assert!(pipeline.stop().success());

    if let Some(spark) = spark("reconnect") {
        let rows: u64 = source_lines(&server, &format!("SELECT COUNT(*) FROM {DB}.t"))[0].parse().unwrap();
        assert_eq!(spark.count(&path).unwrap(), rows, "Spark reads the mirror");
        let feed = change_feed(&python, &path, 0).len() as u64;
        assert_eq!(spark.cdf_count(&path, 0, None).unwrap(), feed, "Spark reads the same change feed");
    }
}

/// `RESET MASTER` under a running lake: the next connection finds a binlog
/// that ends before the table's position and the pipeline stops with one line
/// naming the table, both positions and the options; nothing is written.
#[test]
fn reset_master_under_a_running_lake_is_refused_and_nothing_is_written() {
    let Some(python) = python() else { return };
    let Some(server) = mariadb() else { return };
    server
        .exec(&format!(
            "CREATE DATABASE {DB}; CREATE TABLE {DB}.t (id BIGINT PRIMARY KEY, v INT NOT NULL, w VARCHAR(40)); \
             INSERT INTO {DB}.t VALUES (1, 0, 'a'), (2, 0, 'b')"
        ))
        .unwrap();
    // Enough binlog that the stored position lies beyond a fresh binlog's end.
    server.exec("FLUSH BINARY LOGS; FLUSH BINARY LOGS").unwrap();
    server.exec(&format!("INSERT INTO {DB}.t VALUES (3, 0, 'c')")).unwrap();
    let dir = test_dir();
    let config = write_config(dir.path(), &server, &format!("{DB}.*"), "");
    let path = table_path(dir.path(), DB, "t");
    let mut pipeline = Pipeline::start(&config);
    wait_committed(&mut pipeline, &path, master_version(&server));
    let before = mirror_checksums(&python, &path);

    server.exec(&format!("RESET MASTER; INSERT INTO {DB}.t VALUES (4, 0, 'after the reset')")).unwrap();
    // However the running stream takes the reset, the next connection sees it.
    for id in source_lines(&server, "SELECT id FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%'") {
        let _ = server.exec(&format!("KILL {id}"));
    }
    let status = pipeline.wait_exit(Duration::from_secs(60)).expect("the pipeline stops");
    assert!(!status.success(), "exit non-zero");
    let log = pipeline.log_text();
    let line = log.lines().find(|l| l.starts_with("error:")).unwrap_or_else(|| panic!("an error line; log:\n{log}"));
    assert!(line.contains(&format!("{DB}.t")) && line.contains("RESET MASTER"), "{line}");
    assert!(line.contains("mariadb-bin.000001"), "names the server's position: {line}");
    assert_eq!(mirror_checksums(&python, &path), before, "nothing written after the reset");
}
