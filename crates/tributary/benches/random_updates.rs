//! `make bench-large` (and `make bench` at 1M rows): random-key updates and
//! deletes into tables of 1M, 10M and 30M rows (`BENCH_TABLE_ROWS`, default
//! "1000000 10000000 30000000"), with deletion vectors and with copy-on-write
//! (`BENCH_UPDATE_MODES`, default "deletion_vectors rewrite").
//!
//! Per table size: MariaDB's bench table is filled, each mode's lake gets its
//! initial snapshot (not measured here: `make bench-snapshot`), then
//! `BENCH_RANDOM_TXNS` (default 300: three batches of 100k changes, so the
//! figures are the stream's pace rather than one batch's start-up)
//! transactions of 1000 keys drawn uniformly from the whole table (800
//! updates + 200 deletes each, keys distinct within a transaction, never one
//! deleted before) are written to the binlog while no pipeline runs, and each
//! mode's pipeline replays them: rows/s and
//! Tributary's CPU µs per changed row (process start to the last commit),
//! peak RSS, bytes the table grew by per changed row. Both modes replay the
//! same binlog from the same snapshot position. `BENCH_SNAPSHOT_PARALLELISM`
//! (default 2) sets the connections of the initial copy (1: each data file in
//! key order; more: files of interleaved chunks).

mod common;

use common::{
    fill_bench_table, local_bytes, mariadb_with_bench_table, master, print_figures, start, stop, wait,
    write_random_txns, APP, RANDOM_TXN_KEYS,
};
use std::path::{Path, PathBuf};
use std::time::Instant;
use tributary_testkit::{MariaDb, TestDir};

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let words = |var: &str, default: &str| -> Vec<String> {
        std::env::var(var).unwrap_or_else(|_| default.into()).split_whitespace().map(String::from).collect()
    };
    let sizes: Vec<u64> =
        words("BENCH_TABLE_ROWS", "1000000 10000000 30000000").iter().filter_map(|v| v.parse().ok()).collect();
    let modes = words("BENCH_UPDATE_MODES", "deletion_vectors rewrite");
    let txns: usize = std::env::var("BENCH_RANDOM_TXNS").ok().and_then(|v| v.parse().ok()).unwrap_or(300);
    for rows in sizes {
        one_size(rows, &modes, txns);
    }
}

fn one_size(rows: u64, modes: &[String], txns: usize) {
    let server = mariadb_with_bench_table();
    let filled = Instant::now();
    fill_bench_table(&server, 1, rows, 1_000_000);
    server.exec("ANALYZE TABLE bench.t").unwrap();
    let dir = TestDir::new().unwrap();
    let lakes: Vec<(String, PathBuf, PathBuf)> = modes
        .iter()
        .map(|mode| {
            let lake = dir.path().join(format!("lake-{mode}"));
            let config = write_config(dir.path(), &server, &lake, mode);
            let target = master(&server).1;
            let mut pipeline = start(&config);
            wait(&mut pipeline, &lake.join("bench/t"), target);
            stop(pipeline);
            (mode.clone(), lake, config)
        })
        .collect();
    println!(
        "random-key updates into a table of {rows} rows (filled and copied in {:.0} s)",
        filled.elapsed().as_secs_f64()
    );

    write_random_txns(&server, &mut 11, txns, rows, |_| true);
    let target = master(&server).1;
    let changed = (txns * RANDOM_TXN_KEYS) as u64;
    for (mode, lake, config) in lakes {
        let table = lake.join("bench/t");
        let before = local_bytes(&table).unwrap_or(0);
        let started = Instant::now();
        let mut pipeline = start(&config);
        let catch_up = wait(&mut pipeline, &table, target);
        let secs = started.elapsed().as_secs_f64();
        stop(pipeline);
        let grown = local_bytes(&table).unwrap_or(0).saturating_sub(before);
        let extra = format!("{:.0} bytes written per changed row", grown as f64 / changed as f64);
        print_figures(&format!("{}M {mode}", rows / 1_000_000), changed, secs, &catch_up, &extra);
        let _ = std::fs::remove_dir_all(&lake);
    }
}

fn write_config(dir: &Path, server: &MariaDb, lake: &Path, mode: &str) -> PathBuf {
    let parallelism = std::env::var("BENCH_SNAPSHOT_PARALLELISM").unwrap_or_else(|_| "2".into());
    let text = format!(
        "[pipeline]\nname = \"{APP}\"\n[source.mysql]\nport = {}\nuser = \"cdc\"\npassword = \"cdc-pw\"\n\
         snapshot_parallelism = {parallelism}\ninclude = [\"bench.t\"]\n[sink.delta]\nroot = \"{}\"\nupdate_mode = \"{mode}\"\n\
         [metrics]\nlisten = \"127.0.0.1:0\"\n",
        server.port(),
        lake.display()
    );
    let path = dir.join(format!("pipeline-{mode}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}
