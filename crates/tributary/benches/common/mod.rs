//! What the end-to-end benchmarks share: the `tributary run` process, the
//! wait for its catch-up and its peak memory.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The app id (pipeline name) of the benchmark configs.
pub const APP: &str = "bench";

/// Starts `tributary run` (log level from `TRIBUTARY_LOG`, default warn).
pub fn start(config: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args(["run", "--config"])
        .arg(config)
        .env("TRIBUTARY_LOG", std::env::var("TRIBUTARY_LOG").unwrap_or_else(|_| "warn".into()))
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn tributary")
}

/// SIGTERM; the pipeline must exit 0.
pub fn stop(mut child: Child) {
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "pipeline exit {status}");
}

/// What the pipeline process used until it caught up.
pub struct CatchUp {
    /// Peak resident set size, kB.
    pub peak_rss_kb: u64,
    /// CPU time (user + system) of the process, seconds.
    pub cpu_secs: f64,
}

/// Waits until the table holds `version`; returns the pipeline's peak RSS
/// and the CPU time it used up to then.
pub fn wait(child: &mut Child, table: &Path, version: i64) -> CatchUp {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let deadline = Instant::now() + Duration::from_secs(1800);
    let mut peak = 0;
    loop {
        assert!(child.try_wait().unwrap().is_none(), "pipeline exited early");
        peak = peak.max(vm_hwm_kb(child.id()));
        if let Ok(status) = rt.block_on(tributary_delta::table_status(table, APP)) {
            if status.committed_version.is_some_and(|v| v >= version) {
                let peak_rss_kb = peak.max(vm_hwm_kb(child.id()));
                return CatchUp { peak_rss_kb, cpu_secs: cpu_secs(child.id()) };
            }
        }
        assert!(Instant::now() < deadline, "no catch-up within 30 min");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Peak resident set size of a process, kB (`VmHWM`).
pub fn vm_hwm_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// CPU time (user + system) a process has used so far, seconds (`/proc/<pid>/stat`).
pub fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at field 3.
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the name.
    let ticks_per_sec = clock_ticks_per_sec();
    (ticks(11) + ticks(12)) as f64 / ticks_per_sec
}

fn clock_ticks_per_sec() -> f64 {
    let out = Command::new("getconf").arg("CLK_TCK").output().ok();
    out.and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok()).unwrap_or(100.0)
}

/// `count` distinct ids drawn uniformly from `1..=max` that `usable` accepts
/// (a deterministic generator: the same `state` gives the same ids). Random
/// keys are how real updates arrive; a contiguous range is the best case for
/// the key-range pruning and flatters the figures.
#[allow(dead_code)] // the snapshot benchmark updates nothing
pub fn random_ids(state: &mut u64, count: usize, max: u64, mut usable: impl FnMut(u64) -> bool) -> Vec<u64> {
    let mut picked = std::collections::HashSet::with_capacity(count);
    let mut ids = Vec::with_capacity(count);
    while ids.len() < count {
        // splitmix64
        *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        let id = 1 + z % max;
        if usable(id) && picked.insert(id) {
            ids.push(id);
        }
    }
    ids
}

/// Keys per transaction of the random-key scenario, and how many of them are deleted.
#[allow(dead_code)] // not every benchmark runs the random-key scenario
pub const RANDOM_TXN_KEYS: usize = 1000;
#[allow(dead_code)]
pub const RANDOM_TXN_DELETES: usize = 200;
/// Transactions of the random-key scenario.
#[allow(dead_code)]
pub const RANDOM_TXNS: usize = 100;

/// One line of figures: rows/s, CPU µs per row, peak RSS, plus `extra`.
pub fn print_figures(name: &str, rows: u64, secs: f64, catch_up: &CatchUp, extra: &str) {
    println!(
        "{name:>16}: {rows} rows in {secs:.2} s = {:.0} rows/s, {:.2} µs CPU/row, {extra}, peak RSS {:.0} MB",
        rows as f64 / secs,
        catch_up.cpu_secs * 1e6 / rows as f64,
        catch_up.peak_rss_kb as f64 / 1024.0
    );
}

/// A MariaDB server with the replication user `cdc` / `cdc-pw` and the empty
/// bench table `bench.t (id BIGINT PK, a INT, b VARCHAR(40), c DECIMAL(12,2), d DATETIME(6))`.
#[allow(dead_code)] // the PostgreSQL benchmark has its own server
pub fn mariadb_with_bench_table() -> tributary_testkit::MariaDb {
    let server = tributary_testkit::MariaDb::start().expect("start MariaDB");
    server.create_user("cdc", "cdc-pw", &["REPLICATION SLAVE, REPLICATION CLIENT, SELECT ON *.*"]).unwrap();
    server.exec("CREATE DATABASE bench").unwrap();
    server
        .exec("CREATE TABLE bench.t (id BIGINT PRIMARY KEY, a INT, b VARCHAR(40), c DECIMAL(12,2), d DATETIME(6))")
        .unwrap();
    server
}

/// The binlog position the server will write next (`SHOW MASTER STATUS`):
/// file and offset, and as a txn version.
#[allow(dead_code)] // the PostgreSQL benchmark has no binlog
pub fn master(server: &tributary_testkit::MariaDb) -> ((String, u64), i64) {
    let out = server.exec("SHOW MASTER STATUS").unwrap();
    let mut cols = out.split('\t');
    let file = cols.next().unwrap().to_string();
    let offset: u64 = cols.next().unwrap().trim().parse().unwrap();
    let position = tributary_core::SourcePosition::MySql(tributary_core::MySqlPosition::new(file.clone(), offset));
    ((file, offset), position.to_version().unwrap())
}

/// Bytes of every file below a local table directory (`None` for a remote one).
#[allow(dead_code)] // not every benchmark writes updates
pub fn local_bytes(table: &Path) -> Option<u64> {
    fn walk(dir: &Path) -> u64 {
        std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| match e.file_type() {
                        Ok(t) if t.is_dir() => walk(&e.path()),
                        _ => e.metadata().map_or(0, |m| m.len()),
                    })
                    .sum()
            })
            .unwrap_or(0)
    }
    table.is_dir().then(|| walk(table))
}

/// Inserts rows `first..=last` into the bench table (values derived from the
/// id), one transaction per `step` rows.
#[allow(dead_code)] // the PostgreSQL benchmark has its own table
pub fn fill_bench_table(server: &tributary_testkit::MariaDb, first: u64, last: u64, step: u64) {
    for from in (first..=last).step_by(step as usize) {
        let to = (from + step - 1).min(last);
        server
            .exec(&format!(
                "USE bench; INSERT INTO bench.t SELECT seq, seq % 1000, CONCAT('row-', seq), seq / 100, \
                 '2024-01-01 00:00:00' + INTERVAL seq SECOND FROM seq_{from}_to_{to}"
            ))
            .unwrap();
    }
}

/// Writes `txns` transactions of [`RANDOM_TXN_KEYS`] distinct ids drawn
/// uniformly from `1..=max` that `usable` accepts and no earlier transaction
/// deleted: [`RANDOM_TXN_DELETES`] of them deleted, the rest updated.
#[allow(dead_code)] // not every benchmark runs the random-key scenario
pub fn write_random_txns(
    server: &tributary_testkit::MariaDb,
    state: &mut u64,
    txns: usize,
    max: u64,
    usable: impl Fn(u64) -> bool,
) {
    let mut deleted = std::collections::HashSet::new();
    for _ in 0..txns {
        let ids = random_ids(state, RANDOM_TXN_KEYS, max, |id| usable(id) && !deleted.contains(&id));
        let (gone, kept) = ids.split_at(RANDOM_TXN_DELETES);
        deleted.extend(gone.iter().copied());
        let list = |ids: &[u64]| ids.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
        server
            .exec(&format!(
                "START TRANSACTION; UPDATE bench.t SET a = a + 1, b = CONCAT(b, '-r') WHERE id IN ({}); \
                 DELETE FROM bench.t WHERE id IN ({}); COMMIT",
                list(kept),
                list(gone)
            ))
            .unwrap();
    }
}
