//! The pipeline rides through source restarts and killed replication
//! connections in process: a continuous mixed workload (inserts, updates of
//! random keys, deletes) runs while the MariaDB server is restarted 20 times
//! and the binlog dump thread is killed; the process never exits, the
//! reconnect counter counts every loss, and at the end mirror = source and
//! the change feed holds each change exactly once. Then kill -9 while the
//! source is down, a restart of the pipeline, and Spark reads the result.

mod common;

use common::http::get;
use common::*;
use std::collections::BTreeMap;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const RESTARTS: u64 = 20;
const INITIAL_ROWS: u64 = 200;

/// Runs `sql` as the admin user over TCP; false when the server did not take it.
fn try_exec(port: u16, db: &str, sql: &str) -> bool {
    Command::new("mariadb")
        .args([
            "-h127.0.0.1",
            &format!("-P{port}"),
            "-uadmin",
            &format!("-p{}", tributary_testkit::mariadb::ADMIN_PASSWORD),
        ])
        .args(["--connect-timeout=2", "-D", db, "-e", sql])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Transactions of one insert, one update of a random existing key and (every
/// third) one delete of a random key, until `stop`; ids are never reused, and
/// every update adds 1 to `v`, so the feed can be checked against the final rows.
fn workload(port: u16, db: String, stop: Arc<AtomicBool>, committed: Arc<AtomicU64>) {
    let mut next_id = INITIAL_ROWS + 1;
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut random = move |below: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        1 + seed % below
    };
    while !stop.load(Ordering::Relaxed) {
        let (update, delete) = (random(next_id - 1), random(next_id - 1));
        let mut sql = format!(
            "BEGIN; INSERT INTO t VALUES ({next_id}, 0, 'w{next_id}'); UPDATE t SET v = v + 1, w = CONCAT('u', v + 1) WHERE id = {update};"
        );
        if next_id % 3 == 0 {
            sql.push_str(&format!(" DELETE FROM t WHERE id = {delete};"));
        }
        sql.push_str(" COMMIT;");
        // A failed call may or may not have committed: the checks read the source's final state.
        if try_exec(port, &db, &sql) {
            committed.fetch_add(1, Ordering::Relaxed);
        } else {
            std::thread::sleep(Duration::from_millis(50));
        }
        next_id += 1;
    }
}

/// The value of the sample `name` in a Prometheus text page.
fn metric(page: &str, name: &str) -> Option<f64> {
    page.lines().find_map(|l| l.strip_prefix(name).and_then(|rest| rest.trim().parse().ok()))
}

fn wait_metric(address: &str, name: &str, want: f64, within: Duration, pipeline: &mut Pipeline) {
    let deadline = Instant::now() + within;
    loop {
        pipeline.assert_running();
        let page = get(address, "/metrics").body;
        if metric(&page, name) == Some(want) {
            return;
        }
        assert!(Instant::now() < deadline, "{name} did not reach {want} in {within:?}; /metrics:\n{page}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Exactly once, checked against the source's final rows: every id inserted
/// once, every id deleted at most once (and then absent), and per present id
/// as many update post-images as its `v` (each update added 1).
fn assert_feed_exact(python: &std::path::Path, path: &std::path::Path, server: &tributary_testkit::MariaDb, db: &str) {
    let feed = change_feed(python, path, 0);
    let mut inserts: BTreeMap<i64, usize> = BTreeMap::new();
    for id in feed_ids(&feed, "insert") {
        *inserts.entry(id).or_default() += 1;
    }
    let dup: Vec<_> = inserts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dup.is_empty(), "ids inserted more than once in the feed: {dup:?}");
    let mut deletes: BTreeMap<i64, usize> = BTreeMap::new();
    for id in feed_ids(&feed, "delete") {
        *deletes.entry(id).or_default() += 1;
    }
    let mut posts: BTreeMap<i64, i64> = BTreeMap::new();
    for id in feed_ids(&feed, "update_postimage") {
        *posts.entry(id).or_default() += 1;
    }
    let source: BTreeMap<i64, i64> = source_lines(server, &format!("SELECT id, v FROM `{db}`.t"))
        .iter()
        .map(|l| {
            let mut cols = l.split('\t');
            (cols.next().unwrap().parse().unwrap(), cols.next().unwrap().parse().unwrap())
        })
        .collect();
    for (id, v) in &source {
        assert_eq!(inserts.get(id), Some(&1), "id {id} is in the source: inserted once in the feed");
        assert_eq!(posts.get(id).copied().unwrap_or(0), *v, "id {id}: one post-image per update");
        assert!(!deletes.contains_key(id), "id {id} is in the source but deleted in the feed");
    }
    for (id, n) in &deletes {
        assert_eq!(*n, 1, "id {id} deleted {n} times in the feed");
        assert!(inserts.contains_key(id) && !source.contains_key(id), "deleted id {id}");
    }
}

#[test]
fn restarts_and_killed_dump_threads_are_ridden_through_exactly_once() {
    let Some(python) = python() else { return };
    let Some(mut server) = mariadb() else { return };
    // The server is this test's own (it restarts it): a plain database, no TestDatabase borrow.
    let db_name = "reconnect".to_string();
    let values: Vec<String> = (1..=INITIAL_ROWS).map(|i| format!("({i}, 0, 'w{i}')")).collect();
    server
        .exec(&format!(
            "CREATE DATABASE {db_name}; CREATE TABLE {db_name}.t (id BIGINT PRIMARY KEY, v INT NOT NULL, w VARCHAR(40)); \
             INSERT INTO {db_name}.t VALUES {}",
            values.join(",")
        ))
        .unwrap();
    let dir = test_dir();
    let config = write_config(dir.path(), &server, &format!("{db_name}.*"), "reconnect_max_secs = 2");
    let address = format!("127.0.0.1:{}", tributary_testkit::ports::free_loopback_port().unwrap());
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("listen = \"127.0.0.1:0\"", &format!("listen = \"{address}\""))).unwrap();
    let path = table_path(dir.path(), &db_name, "t");
    let mut pipeline = Pipeline::start(&config);
    wait_committed(&mut pipeline, &path, master_version(&server));
    wait_metric(&address, "tributary_source_connected", 1.0, Duration::from_secs(10), &mut pipeline);

    let stop = Arc::new(AtomicBool::new(false));
    let committed = Arc::new(AtomicU64::new(0));
    let worker = {
        let (port, db_name, stop, committed) = (server.port(), db_name.clone(), stop.clone(), committed.clone());
        std::thread::spawn(move || workload(port, db_name, stop, committed))
    };

    let mut back_to_first_commit = Vec::new();
    for restart in 1..=RESTARTS {
        let before = committed.load(Ordering::Relaxed);
        while committed.load(Ordering::Relaxed) < before + 5 {
            std::thread::sleep(Duration::from_millis(20));
        }
        server.restart(Duration::from_millis(300)).expect("restart MariaDB");
        let back = Instant::now();
        wait_metric(
            &address,
            "tributary_source_reconnects_total",
            restart as f64,
            Duration::from_secs(30),
            &mut pipeline,
        );
        wait_metric(&address, "tributary_source_connected", 1.0, Duration::from_secs(30), &mut pipeline);
        // The first change committed after the server accepts connections again.
        let target = master_version(&server);
        wait_committed(&mut pipeline, &path, target);
        back_to_first_commit.push(back.elapsed().as_secs_f64());
    }
    eprintln!("server accepting connections -> caught up, per restart (s): {back_to_first_commit:.2?}");

    // The replication connection killed from the server side.
    let dump = source_lines(&server, "SELECT id FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%'");
    assert_eq!(dump.len(), 1, "one binlog dump thread: {dump:?}");
    server.exec(&format!("KILL {}", dump[0])).unwrap();
    wait_metric(
        &address,
        "tributary_source_reconnects_total",
        (RESTARTS + 1) as f64,
        Duration::from_secs(30),
        &mut pipeline,
    );
    wait_metric(&address, "tributary_source_connected", 1.0, Duration::from_secs(30), &mut pipeline);

    stop.store(true, Ordering::Relaxed);
    worker.join().unwrap();
    wait_committed(&mut pipeline, &path, master_version(&server));
    pipeline.assert_running();
    let log = pipeline.log_text();
    assert!(log.contains("lost the source connection; reconnecting"), "one line per loss in the log");
    eprintln!("{} workload transactions confirmed by the server", committed.load(Ordering::Relaxed));

    let source_md5 =
        source_lines(&server, &format!("SELECT id, MD5(CONCAT_WS('|', id, v, w)) FROM `{db_name}`.t ORDER BY id"));
    assert_eq!(mirror_checksums(&python, &path), source_md5, "mirror = source after {RESTARTS} restarts and a KILL");
    assert_feed_exact(&python, &path, &server, &db_name);

    // kill -9 while the source is down (changes before and after it touch rows that surely exist:
    // an UPDATE matching no row writes no binlog event), then the source comes back first and the pipeline after.
    server.exec(&format!("INSERT INTO {db_name}.t VALUES (1000000, 0, 'a'), (1000001, 0, 'b')")).unwrap();
    wait_committed(&mut pipeline, &path, master_version(&server));
    server
        .exec(&format!(
            "UPDATE {db_name}.t SET v = v + 1 WHERE id = 1000001; DELETE FROM {db_name}.t WHERE id = 1000000"
        ))
        .unwrap();
    // The pipeline dies (kill -9) while the server is down for 1.5 s.
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(700));
        pipeline.kill9();
    });
    server.restart(Duration::from_millis(1500)).expect("restart MariaDB");
    killer.join().unwrap();
    server.exec(&format!("UPDATE {db_name}.t SET v = v + 1 WHERE id = 1000001")).unwrap();
    let mut pipeline = Pipeline::start(&config);
    wait_committed(&mut pipeline, &path, master_version(&server));
    let source_md5 =
        source_lines(&server, &format!("SELECT id, MD5(CONCAT_WS('|', id, v, w)) FROM `{db_name}`.t ORDER BY id"));
    assert_eq!(mirror_checksums(&python, &path), source_md5, "mirror = source after kill -9 across a restart");
    assert_feed_exact(&python, &path, &server, &db_name);
    assert!(pipeline.stop().success());

    if let Some(spark) = spark("reconnect") {
        let rows = source_lines(&server, &format!("SELECT COUNT(*) FROM `{db_name}`.t"))[0].parse::<u64>().unwrap();
        assert_eq!(spark.count(&path).unwrap(), rows, "Spark reads the mirror");
        let feed = change_feed(&python, &path, 0).len() as u64;
        assert_eq!(spark.cdf_count(&path, 0, None).unwrap(), feed, "Spark reads the same change feed");
    }
}
