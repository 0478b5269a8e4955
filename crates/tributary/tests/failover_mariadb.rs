//! MariaDB failover by GTID: three test-kit servers in a replication chain
//! A → B → C (`log_slave_updates`, `gtid_strict_mode`, one GTID domain),
//! whose binlogs have other file names and offsets (A's is at file 4, B's
//! and C's at file 1). The pipeline reads through a TCP address that moves
//! from server to server, as a DNS name or virtual IP does in a managed
//! failover, while a mixed workload (inserts, random-key updates, deletes)
//! runs on whichever server is the primary:
//!
//! 1. A → B with the pipeline down: killed -9 mid-workload, more
//!    transactions on A it never read, A stops, B is promoted, the pipeline
//!    starts again and carries every table over by its GTID (the first try
//!    dies after one table, a failpoint; the next start finishes).
//! 2. B → C with the pipeline running: the address moves, the reconnect finds
//!    another server of the same domain and the pipeline starts again in
//!    process.
//!
//! After each: mirror = the new primary (md5 per row), the change feed holds
//! each change exactly once; Spark reads the result. A replica that lacks
//! the lake's transactions (promoted before it caught up) is refused with one
//! line and nothing is written.

mod common;

use common::workload::{assert_mirror_and_feed_exact, listen_on_free_port, mariadb_try_exec, wait_metric, Workload};
use common::*;
use std::io::Write as _;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tributary_testkit::{require, MariaDb, MariaDbOptions};

const DB: &str = "failover";
const INITIAL_ROWS: u64 = 200;

/// A TCP address that forwards to one server and can be moved to another
/// (dropping every connection open through it), like a failover DNS name.
struct MovableAddress {
    port: u16,
    target: Arc<AtomicU16>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl MovableAddress {
    fn to(target: u16) -> MovableAddress {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let target = Arc::new(AtomicU16::new(target));
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (to, conns) = (target.clone(), open.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(("127.0.0.1", to.load(Ordering::SeqCst))) else { continue };
                let mut list = conns.lock().unwrap();
                list.push(client.try_clone().unwrap());
                list.push(server.try_clone().unwrap());
                for (mut from, mut into) in
                    [(client.try_clone().unwrap(), server.try_clone().unwrap()), (server, client)]
                {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut into);
                        let _ = into.flush();
                        let _ = into.shutdown(Shutdown::Both);
                    });
                }
            }
        });
        MovableAddress { port, target, open }
    }

    /// Points the address at `target` and drops every connection made through it.
    fn move_to(&self, target: u16) {
        self.target.store(target, Ordering::SeqCst);
        for conn in self.open.lock().unwrap().drain(..) {
            let _ = conn.shutdown(Shutdown::Both);
        }
    }
}

fn chain_member(server_id: u32) -> Option<MariaDb> {
    let options = MariaDbOptions {
        server_id,
        extra_args: vec!["--log-slave-updates=ON".into(), "--gtid-strict-mode=ON".into()],
        ..Default::default()
    };
    let server = require("MariaDB", MariaDb::start_with(options))?;
    // Each server's binlog starts empty: the chain's GTIDs are the primary's alone.
    server.exec("RESET MASTER").unwrap();
    Some(server)
}

/// `replica` replicates `primary` by GTID from the start of its binlog.
fn replicate(replica: &MariaDb, primary: &MariaDb) {
    replica
        .exec(&format!(
            "SET GLOBAL gtid_slave_pos = ''; CHANGE MASTER TO MASTER_HOST = '127.0.0.1', MASTER_PORT = {}, \
             MASTER_USER = 'admin', MASTER_PASSWORD = '{}', MASTER_USE_GTID = slave_pos; START SLAVE",
            primary.port(),
            tributary_testkit::mariadb::ADMIN_PASSWORD
        ))
        .unwrap();
}

/// Waits until `replica` applied everything `primary` wrote.
fn wait_replicated(replica: &MariaDb, primary: &MariaDb) {
    let state = primary.exec("SELECT @@gtid_binlog_pos").unwrap();
    let waited = replica.exec(&format!("SELECT MASTER_GTID_WAIT('{}', 60)", state.trim())).unwrap();
    assert_eq!(waited.trim(), "0", "replica caught up with {state}");
}

/// `server` stops replicating and takes writes.
fn promote(server: &MariaDb) {
    server.exec("STOP SLAVE; RESET SLAVE ALL").unwrap();
}

fn workload_on(port: u16, first_id: u64) -> Workload {
    Workload::start_at(first_id, INITIAL_ROWS, move |sql| mariadb_try_exec(port, DB, sql))
}

/// A pipeline config reading through `port` (the movable address).
fn config_through(dir: &Path, server: &MariaDb, port: u16) -> std::path::PathBuf {
    let config = write_config(dir, server, &format!("{DB}.*"), "reconnect_max_secs = 1");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replacen(&format!("port = {}", server.port()), &format!("port = {port}"), 1)).unwrap();
    config
}

fn binlog_file(server: &MariaDb) -> String {
    server.exec("SHOW MASTER STATUS").unwrap().split('\t').next().unwrap().to_string()
}

#[test]
fn the_pipeline_follows_failovers_by_gtid_exactly_once() {
    if !failpoints() {
        return;
    }
    let Some(python) = python() else { return };
    let Some(a) = chain_member(1) else { return };
    let Some(b) = chain_member(2) else { return };
    let Some(c) = chain_member(3) else { return };
    a.exec("FLUSH BINARY LOGS; FLUSH BINARY LOGS; FLUSH BINARY LOGS").unwrap();
    replicate(&b, &a);
    replicate(&c, &b);
    a.create_user(CDC_USER, CDC_PASSWORD, &["REPLICATION SLAVE, REPLICATION CLIENT, SELECT ON *.*"]).unwrap();
    let values: Vec<String> = (1..=INITIAL_ROWS).map(|i| format!("({i}, 0, 'w{i}')")).collect();
    a.exec(&format!(
        "CREATE DATABASE {DB}; CREATE TABLE {DB}.t (id BIGINT PRIMARY KEY, v INT NOT NULL, w VARCHAR(40)); \
         CREATE TABLE {DB}.quiet (id INT PRIMARY KEY, note VARCHAR(20)); INSERT INTO {DB}.quiet VALUES (1, 'a'); \
         INSERT INTO {DB}.t VALUES {}",
        values.join(",")
    ))
    .unwrap();
    wait_replicated(&b, &a);
    wait_replicated(&c, &b);
    assert_ne!(binlog_file(&a), binlog_file(&b), "the servers' binlog files differ");

    let address = MovableAddress::to(a.port());
    let dir = test_dir();
    let config = config_through(dir.path(), &a, address.port);
    let metrics = listen_on_free_port(&config);
    let path = table_path(dir.path(), DB, "t");
    let quiet = table_path(dir.path(), DB, "quiet");
    let mut pipeline = Pipeline::start(&config);
    wait_committed(&mut pipeline, &path, master_version(&a));

    // 1. A → B with the pipeline down, behind A by transactions it never read.
    let workload = workload_on(a.port(), 1_000_000);
    workload.wait_more(40);
    pipeline.kill9();
    workload.wait_more(40);
    workload.finish();
    wait_replicated(&b, &a);
    address.move_to(b.port());
    drop(a);
    promote(&b);
    // Killed in the middle of the hand-over (one table carried over, one not): the next start finishes it.
    let mut dying = Pipeline::start_with_env(&config, &[("TRIBUTARY_FAILPOINT_DIE_AFTER_FOLLOW", Path::new("1"))]);
    let died = dying.wait_exit(Duration::from_secs(60)).expect("the failpoint ends the process");
    assert!(!died.success());
    assert_eq!(dying.log_text().matches("continues after its GTID").count(), 1, "{}", dying.log_text());
    let mut pipeline = Pipeline::start(&config);
    let workload = workload_on(b.port(), 2_000_000);
    workload.wait_more(40);
    workload.finish();
    wait_committed(&mut pipeline, &path, master_version(&b));
    let log = pipeline.log_text();
    assert!(log.contains("the table continues after its GTID on the new server"), "tables carried over; log:\n{log}");
    let carried: Vec<&str> = log.lines().filter(|l| l.contains("continues after its GTID")).collect();
    eprintln!("{}", carried.join("\n"));
    assert_eq!(carried.len(), 1, "the table the killed hand-over did not carry over, and only it");
    assert_mirror_and_feed_exact(&python, &path, &b, DB, "after the failover A → B");
    assert_eq!(mirror_lines(&python, &quiet, &["id", "note"]), vec!["1\ta".to_string()], "the idle table too");

    // 2. B → C while the pipeline runs: the address moves under it.
    let workload = workload_on(b.port(), 3_000_000);
    workload.wait_more(40);
    workload.finish();
    wait_replicated(&c, &b);
    address.move_to(c.port());
    drop(b);
    promote(&c);
    let workload = workload_on(c.port(), 4_000_000);
    workload.wait_more(40);
    workload.finish();
    wait_committed(&mut pipeline, &path, master_version(&c));
    pipeline.assert_running();
    let log = pipeline.log_text();
    assert!(log.contains("the source failed over"), "noticed in process; log:\n{log}");
    wait_metric(&metrics, "tributary_source_connected", 1.0, Duration::from_secs(30), &mut pipeline);
    assert_mirror_and_feed_exact(&python, &path, &c, DB, "after the failover B → C in process");
    c.exec(&format!("UPDATE {DB}.quiet SET note = 'b' WHERE id = 1")).unwrap();
    wait_committed(&mut pipeline, &quiet, master_version(&c));
    assert_eq!(mirror_lines(&python, &quiet, &["id", "note"]), vec!["1\tb".to_string()]);
    assert!(pipeline.stop().success());

    if let Some(spark) = spark("failover") {
        let rows: u64 = source_lines(&c, &format!("SELECT COUNT(*) FROM {DB}.t"))[0].parse().unwrap();
        assert_eq!(spark.count(&path).unwrap(), rows, "Spark reads the mirror");
        let feed = change_feed(&python, &path, 0).len() as u64;
        assert_eq!(spark.cdf_count(&path, 0, None).unwrap(), feed, "Spark reads the same change feed");
    }
}

/// A replica that stopped replicating before the lake's last transactions
/// (promoted before it caught up): refused with one line, nothing written.
#[test]
fn a_replica_behind_the_lake_is_refused_and_nothing_is_written() {
    let Some(python) = python() else { return };
    let Some(a) = chain_member(1) else { return };
    let Some(lagging) = chain_member(2) else { return };
    replicate(&lagging, &a);
    a.create_user(CDC_USER, CDC_PASSWORD, &["REPLICATION SLAVE, REPLICATION CLIENT, SELECT ON *.*"]).unwrap();
    a.exec(&format!(
        "CREATE DATABASE {DB}; CREATE TABLE {DB}.t (id BIGINT PRIMARY KEY, v INT NOT NULL, w VARCHAR(40)); \
         INSERT INTO {DB}.t VALUES (1, 0, 'a')"
    ))
    .unwrap();
    wait_replicated(&lagging, &a);
    lagging.exec("STOP SLAVE").unwrap();
    a.exec(&format!("INSERT INTO {DB}.t VALUES (2, 0, 'b'); UPDATE {DB}.t SET v = 1 WHERE id = 1")).unwrap();
    let address = MovableAddress::to(a.port());
    let dir = test_dir();
    let config = config_through(dir.path(), &a, address.port);
    let path = table_path(dir.path(), DB, "t");
    let mut pipeline = Pipeline::start(&config);
    wait_committed(&mut pipeline, &path, master_version(&a));
    assert!(pipeline.stop().success());
    let before = mirror_checksums(&python, &path);

    address.move_to(lagging.port());
    let line = fails_with_one_line("run", &config);
    assert!(line.contains("lacks transactions the lake holds"), "{line}");
    assert!(line.contains(&format!("{DB}.t")) && line.contains("0-1-"), "names the table and the GTID: {line}");
    assert_eq!(mirror_checksums(&python, &path), before, "nothing written");
}
