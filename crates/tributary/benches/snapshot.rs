//! `make bench-snapshot`: the chunked initial snapshot of the bench table
//! (`BENCH_SNAPSHOT_ROWS`, default 10M rows, MariaDB on the same machine)
//! into an empty local lake, at `snapshot_parallelism` 1, 2 and 4
//! (`BENCH_SNAPSHOT_PARALLELISM="1 2 4"`): rows/s, Tributary's CPU µs per
//! row (the server's own CPU is not counted) and peak RSS, plus the same
//! table read in one transaction (`snapshot_method = "one_transaction"`).

mod common;

use common::{fill_bench_table, mariadb_with_bench_table, master, print_figures, start, stop, wait, APP};
use std::path::{Path, PathBuf};
use std::time::Instant;
use tributary_testkit::{MariaDb, TestDir};

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rows: u64 = std::env::var("BENCH_SNAPSHOT_ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000_000);
    let parallelism: Vec<usize> = std::env::var("BENCH_SNAPSHOT_PARALLELISM")
        .unwrap_or_else(|_| "1 2 4".into())
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect();
    let server = mariadb_with_bench_table();
    let filled = Instant::now();
    fill_bench_table(&server, 1, rows, 100_000);
    server.exec("ANALYZE TABLE bench.t").unwrap();
    println!("snapshot benchmark: {rows} rows in bench.t (filled in {:.0} s)", filled.elapsed().as_secs_f64());
    let dir = TestDir::new().unwrap();
    for p in &parallelism {
        run(&server, dir.path(), rows, &format!("chunked, parallelism {p}"), &format!("snapshot_parallelism = {p}"));
    }
    run(&server, dir.path(), rows, "one transaction", "snapshot_method = \"one_transaction\"");
}

fn run(server: &MariaDb, dir: &Path, rows: u64, name: &str, source_line: &str) {
    let lake = dir.join("lake");
    let _ = std::fs::remove_dir_all(&lake);
    let config = write_config(dir, server, &lake, source_line);
    let table = lake.join("bench/t");
    let target = master(server).1;
    let started = Instant::now();
    let mut pipeline = start(&config);
    let catch_up = wait(&mut pipeline, &table, target);
    let secs = started.elapsed().as_secs_f64();
    stop(pipeline);
    print_figures(name, rows, secs, &catch_up, "read with SELECT");
}

fn write_config(dir: &Path, server: &MariaDb, lake: &Path, source_line: &str) -> PathBuf {
    let text = format!(
        "[pipeline]\nname = \"{APP}\"\n[source.mysql]\nport = {}\nuser = \"cdc\"\npassword = \"cdc-pw\"\n\
         include = [\"bench.t\"]\n{source_line}\n[sink.delta]\nroot = \"{}\"\n[metrics]\nlisten = \"127.0.0.1:0\"\n",
        server.port(),
        lake.display()
    );
    let path = dir.join("pipeline.toml");
    std::fs::write(&path, text).unwrap();
    path
}
