//! `make bench`: rows/s, CPU µs per row, MB/s and peak RSS of the release
//! binary replaying an already-written MariaDB binlog into Delta, for (a) 1M
//! inserts, (b) 200k updates + 50k deletes over the 1M-row table in contiguous
//! id ranges (the best case for key-range pruning), (b2) 80k updates + 20k
//! deletes of uniformly random ids over the whole table in transactions of
//! 1000 keys (how real updates arrive), and (c) the initial snapshot of the
//! table left. The binlog is written before the pipeline starts, so the
//! source is not the bottleneck.
//!
//! `BENCH_LAKE=s3` (`make bench-s3`) puts the lake on the local S3 server
//! (moto, loopback) and runs (a) and (b2), printing the requests the server
//! served per 1000 rows (object storage bills per request).
//!
//! `BENCH_UPDATE_MODE=deletion_vectors` sets `[sink.delta] update_mode` (the
//! table is created with deletion vectors; docs/deletion-vectors.md).

mod common;

use common::{
    fill_bench_table, local_bytes, mariadb_with_bench_table, master, print_figures, start, stop, wait,
    write_random_txns, APP, RANDOM_TXNS, RANDOM_TXN_KEYS,
};
use std::path::{Path, PathBuf};
use std::time::Instant;
use tributary_testkit::{MariaDb, TestDir};

const ROWS: u64 = 1_000_000;
const TXN_ROWS: u64 = 10_000;

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` lists benches; nothing to list here.
    }
    let server = mariadb_with_bench_table();
    let dir = TestDir::new().unwrap();
    let s3 = (std::env::var("BENCH_LAKE").as_deref() == Ok("s3")).then(start_s3);
    let root = match &s3 {
        Some(s3) => s3.url("bench"),
        None => dir.path().join("lake").display().to_string(),
    };
    let config = write_config(dir.path(), &server, &root, s3.as_ref());
    let table = PathBuf::from(format!("{root}/bench/t"));
    let requests = || s3.as_ref().map(|s3| s3.request_counts().unwrap());

    // Empty snapshot: the table starts at the current position.
    let mut pipeline = start(&config);
    wait(&mut pipeline, &table, master(&server).1);
    stop(pipeline);

    let (file, start_offset) = master(&server).0;
    fill_bench_table(&server, 1, ROWS, TXN_ROWS);
    let ((_, end_offset), target) = master(&server);
    let before = requests();
    report("inserts", ROWS, &config, &table, target, end_offset - start_offset, &file);
    print_requests("inserts", ROWS, before, requests());

    if s3.is_none() {
        contiguous_updates(&server, &config, &table, &file);
    }

    random_updates(&server, &config, &table, &file, &requests);

    // (c) the initial snapshot of the 950k rows left, into an empty lake.
    if s3.is_some() {
        return;
    }
    std::fs::remove_dir_all(dir.path().join("lake")).unwrap();
    let rows: u64 = server.exec("SELECT COUNT(*) FROM bench.t").unwrap().trim().parse().unwrap();
    report("snapshot", rows, &config, &table, master(&server).1, 0, &file);
}

/// (b) 200k updates + 50k deletes in contiguous id ranges.
fn contiguous_updates(server: &MariaDb, config: &Path, table: &Path, file: &str) {
    let start_offset = master(server).0 .1;
    for first in (1..=ROWS).step_by(TXN_ROWS as usize * 5) {
        let last = first + TXN_ROWS * 5 - 1;
        server
            .exec(&format!(
                "UPDATE bench.t SET a = a + 1, b = CONCAT(b, '-u') WHERE id BETWEEN {first} AND {last} AND id % 5 = 0; \
                 DELETE FROM bench.t WHERE id BETWEEN {first} AND {last} AND id % 20 = 1"
            ))
            .unwrap();
    }
    let ((_, end_offset), target) = master(server);
    report("updates+deletes", 250_000, config, table, target, end_offset - start_offset, file);
}

/// (b2) random keys: per transaction 800 updates and 200 deletes of distinct
/// ids drawn from the whole table (never one deleted before, nor one (b) deleted).
fn random_updates(
    server: &MariaDb,
    config: &Path,
    table: &Path,
    file: &str,
    requests: &dyn Fn() -> Option<std::collections::BTreeMap<String, u64>>,
) {
    let start_offset = master(server).0 .1;
    write_random_txns(server, &mut 7, RANDOM_TXNS, ROWS, |id| id % 20 != 1);
    let ((_, end_offset), target) = master(server);
    let random_rows = (RANDOM_TXNS * RANDOM_TXN_KEYS) as u64;
    let before = requests();
    let bytes_before = local_bytes(table);
    report("random upd+del", random_rows, config, table, target, end_offset - start_offset, file);
    print_requests("random upd+del", random_rows, before, requests());
    if let (Some(a), Some(b)) = (bytes_before, local_bytes(table)) {
        println!(
            "{:>16}: {:.0} bytes written per changed row (data, change data, vectors and log; nothing vacuumed)",
            "random upd+del",
            b.saturating_sub(a) as f64 / random_rows as f64
        );
    }
}

/// The local S3 server, with this process's `AWS_*` environment pointing at it.
fn start_s3() -> tributary_testkit::S3Server {
    let s3 = tributary_testkit::S3Server::start().expect("start the S3 server (make setup)");
    for (key, value) in s3.env() {
        // SAFETY: set before any other thread of the benchmark reads the environment.
        unsafe { std::env::set_var(key, value) };
    }
    s3
}

/// Requests the S3 server served between `before` and `after`, per 1000 rows.
fn print_requests(
    name: &str,
    rows: u64,
    before: Option<std::collections::BTreeMap<String, u64>>,
    after: Option<std::collections::BTreeMap<String, u64>>,
) {
    let (Some(before), Some(after)) = (before, after) else { return };
    let served = |key: &str| after.get(key).copied().unwrap_or(0) - before.get(key).copied().unwrap_or(0);
    let per_1000: Vec<String> = after
        .keys()
        .filter(|method| *method != "GET_BYTES")
        .map(|method| format!("{method} {:.2}", served(method) as f64 * 1000.0 / rows as f64))
        .collect();
    println!(
        "{name:>16}: S3 requests per 1000 rows: {}; bytes read per row: {:.0}",
        per_1000.join(", "),
        served("GET_BYTES") as f64 / rows as f64
    );
}

fn report(name: &str, rows: u64, config: &Path, table: &Path, target: i64, binlog_bytes: u64, file: &str) {
    let started = Instant::now();
    let mut pipeline = start(config);
    let catch_up = wait(&mut pipeline, table, target);
    let secs = started.elapsed().as_secs_f64();
    stop(pipeline);
    let binlog = if binlog_bytes == 0 {
        "read with SELECT".to_string()
    } else {
        format!("{:.1} MB/s of binlog ({binlog_bytes} bytes of {file})", binlog_bytes as f64 / secs / 1e6)
    };
    print_figures(name, rows, secs, &catch_up, &binlog);
}

fn write_config(dir: &Path, server: &MariaDb, root: &str, s3: Option<&tributary_testkit::S3Server>) -> PathBuf {
    let storage = s3.map_or(String::new(), |s3| {
        format!(
            "[sink.delta.storage]\nendpoint = \"{}\"\nregion = \"{}\"\naccess_key_id = \"{}\"\n\
             secret_access_key = \"{}\"\nallow_http = \"true\"\n",
            s3.endpoint(),
            s3.region(),
            s3.access_key_id(),
            s3.secret_access_key()
        )
    });
    let mode = std::env::var("BENCH_UPDATE_MODE").map_or(String::new(), |m| format!("update_mode = \"{m}\"\n"));
    let text = format!(
        "[pipeline]\nname = \"{APP}\"\n[source.mysql]\nport = {}\nuser = \"cdc\"\npassword = \"cdc-pw\"\ninclude = [\"bench.t\"]\n\
         [sink.delta]\nroot = \"{root}\"\n{mode}{storage}[metrics]\nlisten = \"127.0.0.1:0\"\n",
        server.port(),
    );
    let path = dir.join("pipeline.toml");
    std::fs::write(&path, text).unwrap();
    path
}
