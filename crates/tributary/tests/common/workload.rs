//! A continuous mixed workload whose result can be checked for exactly-once
//! delivery against the source's final rows, and the metric waits the
//! reconnect tests share.
//!
//! Each transaction inserts a new id (never reused), adds 1 to `v` of a
//! random existing key and, every third time, deletes a random key; a call
//! that fails may or may not have committed, so the checks read the source's
//! final `(id, v)` instead of counting calls.

use super::http::get;
use super::Pipeline;
use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A running workload on table `t (id, v, w)` whose rows `1..=initial_rows` exist with `v = 0`.
pub struct Workload {
    stop: Arc<AtomicBool>,
    confirmed: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl Workload {
    /// Starts running transactions through `exec` (SQL text → whether the server took it).
    pub fn start(initial_rows: u64, exec: impl Fn(&str) -> bool + Send + 'static) -> Workload {
        Self::start_at(initial_rows + 1, initial_rows, exec)
    }

    /// [`Workload::start`] inserting new ids from `first_id` on (above every id
    /// an earlier workload on the table used); updates and deletes pick keys
    /// among `1..=initial_rows` and the ids this workload inserted.
    pub fn start_at(first_id: u64, initial_rows: u64, exec: impl Fn(&str) -> bool + Send + 'static) -> Workload {
        let stop = Arc::new(AtomicBool::new(false));
        let confirmed = Arc::new(AtomicU64::new(0));
        let (stop_flag, counter) = (stop.clone(), confirmed.clone());
        let thread = std::thread::spawn(move || {
            let mut next_id = first_id;
            let mut seed = 0x2545_F491_4F6C_DD1Du64;
            let mut random = move |below: u64| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                1 + seed % below
            };
            let mut key = move |next_id: u64| {
                let r = random((initial_rows + (next_id - first_id)).max(1));
                if r <= initial_rows {
                    r
                } else {
                    first_id + (r - initial_rows - 1)
                }
            };
            while !stop_flag.load(Ordering::Relaxed) {
                let (update, delete) = (key(next_id), key(next_id));
                let mut sql = format!(
                    "BEGIN; INSERT INTO t (id, v, w) VALUES ({next_id}, 0, 'w{next_id}'); UPDATE t SET v = v + 1, w = CONCAT('u', v + 1) WHERE id = {update};"
                );
                if next_id.is_multiple_of(3) {
                    sql.push_str(&format!(" DELETE FROM t WHERE id = {delete};"));
                }
                sql.push_str(" COMMIT;");
                if exec(&sql) {
                    counter.fetch_add(1, Ordering::Relaxed);
                } else {
                    std::thread::sleep(Duration::from_millis(50));
                }
                next_id += 1;
            }
        });
        Workload { stop, confirmed, thread: Some(thread) }
    }

    /// Transactions the server confirmed so far.
    pub fn confirmed(&self) -> u64 {
        self.confirmed.load(Ordering::Relaxed)
    }

    /// Waits until `n` more transactions were confirmed.
    pub fn wait_more(&self, n: u64) {
        let target = self.confirmed() + n;
        let start = Instant::now();
        while self.confirmed() < target {
            assert!(start.elapsed() < Duration::from_secs(60), "the workload made no progress");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the workload and returns the number of confirmed transactions.
    pub fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
        self.confirmed()
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Runs `sql` in database `db` as the MariaDB admin user over TCP at `port`;
/// false when the server did not take it (down, restarting, refused).
pub fn mariadb_try_exec(port: u16, db: &str, sql: &str) -> bool {
    let password = format!("-p{}", tributary_testkit::mariadb::ADMIN_PASSWORD);
    std::process::Command::new("mariadb")
        .args(["-h127.0.0.1", &format!("-P{port}"), "-uadmin", &password, "--connect-timeout=2", "-D", db, "-e", sql])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// `CREATE DATABASE db` with the workload's table `t (id, v, w)` holding rows `1..=rows` (`v = 0`).
pub fn create_workload_table(server: &tributary_testkit::MariaDb, db: &str, rows: u64) {
    let values: Vec<String> = (1..=rows).map(|i| format!("({i}, 0, 'w{i}')")).collect();
    server
        .exec(&format!(
            "CREATE DATABASE {db}; CREATE TABLE {db}.t (id BIGINT PRIMARY KEY, v INT NOT NULL, w VARCHAR(40)); \
             INSERT INTO {db}.t VALUES {}",
            values.join(",")
        ))
        .unwrap();
}

/// The mirror of `db.t` equals the source row by row (md5 of each row) and its
/// change feed holds each change exactly once ([`assert_feed_exact`]).
pub fn assert_mirror_and_feed_exact(
    python: &std::path::Path,
    path: &std::path::Path,
    server: &tributary_testkit::MariaDb,
    db: &str,
    what: &str,
) {
    let source_md5 =
        super::source_lines(server, &format!("SELECT id, MD5(CONCAT_WS('|', id, v, w)) FROM {db}.t ORDER BY id"));
    assert_eq!(super::mirror_checksums(python, path), source_md5, "mirror = source {what}");
    let source = id_values(&super::source_lines(server, &format!("SELECT id, v FROM {db}.t")));
    assert_feed_exact(&super::change_feed(python, path, 0), &source);
}

/// Exactly once, checked against the source's final `id → v`: every id
/// inserted once, every id deleted at most once (and then absent), and per
/// present id as many update post-images as its `v`.
pub fn assert_feed_exact(feed: &[serde_json::Map<String, Json>], source: &BTreeMap<i64, i64>) {
    let count = |change_type: &str| {
        let mut counts: BTreeMap<i64, i64> = BTreeMap::new();
        for id in super::feed_ids(feed, change_type) {
            *counts.entry(id).or_default() += 1;
        }
        counts
    };
    let (inserts, deletes, posts) = (count("insert"), count("delete"), count("update_postimage"));
    let dup: Vec<_> = inserts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dup.is_empty(), "ids inserted more than once in the feed: {dup:?}");
    for (id, v) in source {
        assert_eq!(inserts.get(id), Some(&1), "id {id} is in the source: inserted once in the feed");
        assert_eq!(posts.get(id).copied().unwrap_or(0), *v, "id {id}: one post-image per update");
        assert!(!deletes.contains_key(id), "id {id} is in the source but deleted in the feed");
    }
    for (id, n) in &deletes {
        assert_eq!(*n, 1, "id {id} deleted {n} times in the feed");
        assert!(inserts.contains_key(id) && !source.contains_key(id), "deleted id {id}");
    }
}

/// `id<TAB>v` (or `id|v`) lines → map.
pub fn id_values(lines: &[String]) -> BTreeMap<i64, i64> {
    lines
        .iter()
        .map(|l| {
            let mut cols = l.split(['\t', '|']).map(|c| c.trim().parse::<i64>().unwrap());
            (cols.next().unwrap(), cols.next().unwrap())
        })
        .collect()
}

/// The value of the sample `name` in a Prometheus text page.
pub fn metric(page: &str, name: &str) -> Option<f64> {
    page.lines().find_map(|l| l.strip_prefix(name).and_then(|rest| rest.trim().parse().ok()))
}

/// Waits until the pipeline's `/metrics` at `address` shows `name` = `want`.
pub fn wait_metric(address: &str, name: &str, want: f64, within: Duration, pipeline: &mut Pipeline) {
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

/// Points the config's `[metrics] listen` at a free loopback port and returns the address.
pub fn listen_on_free_port(config: &std::path::Path) -> String {
    let address = format!("127.0.0.1:{}", tributary_testkit::ports::free_loopback_port().unwrap());
    let text = std::fs::read_to_string(config).unwrap();
    std::fs::write(config, text.replace("listen = \"127.0.0.1:0\"", &format!("listen = \"{address}\""))).unwrap();
    address
}
