//! `make bench` (table maintenance): what automatic compaction and vacuum
//! cost and what they buy, with the release binary replaying an
//! already-written MariaDB binlog into a local lake.
//!
//! 1. **Small commits**: 1,000 transactions of 80 inserts + 20 updates of
//!    random existing ids, one commit each (`batch_max_rows = 100`), replayed
//!    with automatic compaction off and then on (from the same starting
//!    lake): rows/s and CPU µs per row of both (target: compaction costs
//!    ≤ 10 % of the throughput). After the run without compaction, a reader
//!    (delta-rs, Python) times a full scan and a point lookup of the table
//!    (best of 3, a fresh `DeltaTable` each time), then again after
//!    `tributary optimize`.
//! 2. **Vacuum**: the table grown to 1M rows, then 30 transactions of 2,000
//!    random-key updates (2k updates/s for 30 s, one commit per second), with
//!    vacuum every second at retention 0 (the retention window passed): bytes
//!    on disk against the live data (target ≤ 3×).

mod common;

use common::{fill_bench_table, mariadb_with_bench_table, master, print_figures, random_ids, start, stop, wait, APP};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use tributary_testkit::{MariaDb, TestDir};

const SMALL_TXNS: u64 = 1_000;
const SMALL_INSERTS: u64 = 80;
const SMALL_UPDATES: usize = 20;
const BIG_ROWS: u64 = 1_000_000;
const VACUUM_TXNS: usize = 30;
const VACUUM_TXN_KEYS: usize = 2_000;

/// Times a full scan and a point lookup of a Delta table with delta-rs; prints one JSON line.
const READER: &str = r#"
import json, os, sys, time
from deltalake import DeltaTable
path, key = sys.argv[1], int(sys.argv[2])
def best(f):
    times, out = [], None
    for _ in range(3):
        t = time.perf_counter(); out = f(); times.append(time.perf_counter() - t)
    return min(times), out
scan, rows = best(lambda: DeltaTable(path).to_pyarrow_table().num_rows)
lookup, hits = best(lambda: DeltaTable(path).to_pyarrow_table(filters=[("id", "=", key)]).num_rows)
dt = DeltaTable(path)
uris = dt.file_uris()
live = sum(os.path.getsize(u.removeprefix("file://")) for u in uris)
print(json.dumps({"scan_s": scan, "rows": rows, "lookup_s": lookup, "hits": hits, "files": len(uris), "live_bytes": live}))
"#;

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` lists benches; nothing to list here.
    }
    let python = tributary_testkit::venv_python();
    let server = mariadb_with_bench_table();
    let dir = TestDir::new().unwrap();
    let lake = dir.path().join("lake");
    let table = lake.join("bench/t");
    let off = write_config(
        dir.path(),
        "off",
        SMALL_INSERTS + SMALL_UPDATES as u64,
        &server,
        &lake,
        "compaction = false\nvacuum = false",
    );
    let on = write_config(
        dir.path(),
        "on",
        SMALL_INSERTS + SMALL_UPDATES as u64,
        &server,
        &lake,
        "check_interval_secs = 1\nvacuum = false",
    );

    // The empty table at the current position, kept to start both runs from.
    let mut pipeline = start(&off);
    wait(&mut pipeline, &table, master(&server).1);
    stop(pipeline);
    let start_lake = dir.path().join("lake-at-start");
    copy_dir(&lake, &start_lake);

    // 1. Small commits.
    let mut state = 11u64;
    for txn in 0..SMALL_TXNS {
        let first = txn * SMALL_INSERTS + 1;
        let last = first + SMALL_INSERTS - 1;
        let mut sql = format!(
            "START TRANSACTION; INSERT INTO bench.t SELECT seq, seq % 1000, CONCAT('row-', seq), seq / 100, \
             '2024-01-01 00:00:00' + INTERVAL seq SECOND FROM seq_{first}_to_{last};"
        );
        if txn > 0 {
            let ids = random_ids(&mut state, SMALL_UPDATES, first - 1, |_| true);
            let list = ids.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
            sql.push_str(&format!(" UPDATE bench.t SET a = a + 1 WHERE id IN ({list});"));
        }
        sql.push_str(" COMMIT");
        server.exec(&format!("USE bench; {sql}")).unwrap();
    }
    let target = master(&server).1;
    let rows = SMALL_TXNS * SMALL_INSERTS + (SMALL_TXNS - 1) * SMALL_UPDATES as u64;
    let without = replay("no compaction", rows, &off, &table, target);
    let versions = std::fs::read_dir(table.join("_delta_log")).unwrap().count();
    let key = SMALL_TXNS * SMALL_INSERTS / 2;
    let before = read_figures(&python, &table, key);
    let out = Command::new(env!("CARGO_BIN_EXE_tributary")).args(["optimize", "--config"]).arg(&off).output().unwrap();
    assert!(out.status.success(), "optimize: {}", String::from_utf8_lossy(&out.stderr));
    let after = read_figures(&python, &table, key);
    println!(
        "{:>16}: {} log entries; full scan {:.3} s over {} files -> {:.3} s over {} after optimize; \
         point lookup {:.3} s -> {:.3} s ({} rows, {} hit)",
        "reads",
        versions,
        before["scan_s"].as_f64().unwrap(),
        before["files"],
        after["scan_s"].as_f64().unwrap(),
        after["files"],
        before["lookup_s"].as_f64().unwrap(),
        after["lookup_s"].as_f64().unwrap(),
        after["rows"],
        after["hits"]
    );

    std::fs::remove_dir_all(&lake).unwrap();
    copy_dir(&start_lake, &lake);
    let with = replay("compaction on", rows, &on, &table, target);
    let files_with = read_figures(&python, &table, key)["files"].clone();
    println!(
        "{:>16}: compaction on costs {:.1} % of the throughput ({:.0} vs {:.0} rows/s); {} data files at the end",
        "compaction cost",
        (1.0 - with / without) * 100.0,
        with,
        without,
        files_with
    );

    // 2. Vacuum after 30 s of 2k random-key updates per second, on a 1M-row table.
    let vacuum = write_config(
        dir.path(),
        "vacuum",
        VACUUM_TXN_KEYS as u64,
        &server,
        &lake,
        "check_interval_secs = 1\nvacuum_interval_secs = 1\nvacuum_retention_hours = 0",
    );
    fill_bench_table(&server, SMALL_TXNS * SMALL_INSERTS + 1, BIG_ROWS, 10_000);
    let mut pipeline = start(&vacuum);
    wait(&mut pipeline, &table, master(&server).1);
    stop(pipeline);
    for _ in 0..VACUUM_TXNS {
        let ids = random_ids(&mut state, VACUUM_TXN_KEYS, BIG_ROWS, |_| true);
        let list = ids.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
        server.exec(&format!("UPDATE bench.t SET a = a + 1, b = CONCAT(b, '-v') WHERE id IN ({list})")).unwrap();
    }
    let updates = (VACUUM_TXNS * VACUUM_TXN_KEYS) as u64;
    let started = Instant::now();
    let mut pipeline = start(&vacuum);
    let catch_up = wait(&mut pipeline, &table, master(&server).1);
    let secs = started.elapsed().as_secs_f64();
    let at_catch_up = bytes_under(&table);
    // Let the next vacuum (every second, retention 0) run.
    std::thread::sleep(Duration::from_secs(4));
    stop(pipeline);
    let on_disk = bytes_under(&table);
    let live = read_figures(&python, &table, key)["live_bytes"].as_u64().unwrap();
    print_figures("2k upd/s x 30 s", updates, secs, &catch_up, "vacuum every 1 s, retention 0");
    println!(
        "{:>16}: {:.1} MB on disk after vacuum ({:.1} MB at catch-up) for {:.1} MB of live data = {:.2}x (target <= 3x)",
        "vacuum",
        on_disk as f64 / 1e6,
        at_catch_up as f64 / 1e6,
        live as f64 / 1e6,
        on_disk as f64 / live as f64
    );
}

/// Replays the binlog up to `target` with `config`; prints and returns rows/s.
fn replay(name: &str, rows: u64, config: &Path, table: &Path, target: i64) -> f64 {
    let started = Instant::now();
    let mut pipeline = start(config);
    let catch_up = wait(&mut pipeline, table, target);
    let secs = started.elapsed().as_secs_f64();
    stop(pipeline);
    print_figures(name, rows, secs, &catch_up, "1000 commits of 100 rows");
    rows as f64 / secs
}

fn read_figures(python: &Path, table: &Path, key: u64) -> serde_json::Value {
    let out = Command::new(python).args(["-c", READER]).arg(table).arg(key.to_string()).output().unwrap();
    assert!(out.status.success(), "reader: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Bytes of every file below `dir` (data, change data, log, checkpoints).
fn bytes_under(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| {
            let path = e.path();
            if path.is_dir() {
                bytes_under(&path)
            } else {
                e.metadata().map(|m| m.len()).unwrap_or(0)
            }
        })
        .sum()
}

fn copy_dir(from: &Path, to: &Path) {
    let status = Command::new("cp").arg("-a").arg(from).arg(to).status().unwrap();
    assert!(status.success());
}

/// `<dir>/<name>.toml`: the pipeline committing at most `batch_rows` rows at
/// a time, with `maintenance` as its `[maintenance]` section.
fn write_config(dir: &Path, name: &str, batch_rows: u64, server: &MariaDb, root: &Path, maintenance: &str) -> PathBuf {
    let text = format!(
        "[pipeline]\nname = \"{APP}\"\nbatch_max_rows = {batch_rows}\n[source.mysql]\nport = {}\nuser = \"cdc\"\n\
         password = \"cdc-pw\"\ninclude = [\"bench.t\"]\n[sink.delta]\nroot = \"{}\"\n[maintenance]\n{maintenance}\n\
         [metrics]\nlisten = \"127.0.0.1:0\"\n",
        server.port(),
        root.display()
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}
