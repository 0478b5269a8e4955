//! What the `tributary resnapshot` tests share (docs/snapshots.md,
//! "Re-copying a table"): the request, the pipeline's lag gauge, and the
//! watch over a re-copy: the other tables' lag and commits while nothing is
//! killed, then kill -9 at random moments after commits of the copy, each
//! restart continuing it.

use super::chunked_copy::delta_version;
use super::http::{scrape, value};
use super::{tributary, Pipeline, APP};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// kill -9 during each re-copy.
pub const KILLS: usize = 3;
/// The kills start after this many commits of the copy (the lag is watched before).
const KILL_FROM_COMMIT: usize = 4;
/// The other tables' lag while a table is copied again, at most.
pub const LAG_BOUND_SECS: f64 = 10.0;

/// `TRIBUTARY_TEST_RESNAPSHOT_ROWS`: the re-copied table's size (default 1,000,000).
pub fn rows() -> u64 {
    std::env::var("TRIBUTARY_TEST_RESNAPSHOT_ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000)
}

/// Gives the config a fixed metrics port (returned as `IP:port`, where
/// `tributary resnapshot` finds the pipeline), files of a tenth of `rows`,
/// 1 s batches and idle commits after 2 s.
pub fn tune_config(config: &Path, rows: u64) -> String {
    let port = tributary_testkit::ports::free_loopback_port().unwrap();
    let address = format!("127.0.0.1:{port}");
    let text = std::fs::read_to_string(config).unwrap();
    let text = text
        .replace("listen = \"127.0.0.1:0\"", &format!("listen = \"{address}\""))
        .replace(
            "checkpoint_interval = 5",
            &format!("checkpoint_interval = 5\ntarget_file_rows = {}", (rows / 10).max(10_000)),
        )
        .replace("batch_max_wait_ms = 200", "batch_max_wait_ms = 1000\nidle_commit_secs = 2");
    std::fs::write(config, text).unwrap();
    address
}

/// The table's status as the pipeline's app id sees it.
fn status(path: &Path) -> tributary_delta::TableStatus {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(tributary_delta::table_status(path, APP)).unwrap()
}

/// True while the table's re-copy has started and not ended.
pub fn copying(path: &Path) -> bool {
    !status(path).snapshot_complete
}

/// Commit files in the table's `_delta_log`.
fn log_commits(path: &Path) -> usize {
    std::fs::read_dir(path.join("_delta_log"))
        .map(|d| d.filter(|e| e.as_ref().is_ok_and(|e| e.path().extension().is_some_and(|x| x == "json"))).count())
        .unwrap_or(0)
}

/// `tributary resnapshot <table>`: whether it exited 0, and its output.
pub fn resnapshot(config: &Path, table: &str) -> (bool, String) {
    let out = tributary(&["resnapshot", table, "--config", config.to_str().unwrap()]);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text.trim().to_string())
}

/// The pipeline's lag gauge, when it answers.
pub fn lag(address: &str) -> Option<f64> {
    let scraped = std::panic::catch_unwind(|| scrape(address)).ok()?;
    value(&scraped, "tributary_source_lag_seconds", &[])
}

/// Waits (up to 60 s) until the pipeline keeps up: lag at most 2 s.
pub fn wait_calm(address: &str) {
    let calm = Instant::now() + Duration::from_secs(60);
    while lag(address).is_none_or(|l| l > 2.0) {
        assert!(Instant::now() < calm, "the pipeline does not keep up with the workload before the re-copy");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Watches the re-copy of `big` (just requested) until it ends: while
/// nothing is killed, the pipeline's lag (at most [`LAG_BOUND_SECS`]) and
/// the commits of `others` (at least 3 each before the first kill); then
/// [`KILLS`] kill -9 at random moments after commits of the copy, each
/// restart continuing it.
/// Returns the pipeline running after the last restart.
pub fn watch_recopy(mut pipeline: Pipeline, config: &Path, address: &str, big: &Path, others: &[PathBuf]) -> Pipeline {
    let requested = Instant::now();
    let versions_before: Vec<i64> = others.iter().map(|p| delta_version(p)).collect();
    let (mut max_lag, mut lag_samples) = (0f64, 0);
    let mut seed = u64::from(std::process::id()) | 1;
    let (mut kills, mut resumed) = (0, 0);
    let deadline = Instant::now() + Duration::from_secs(900);
    let first_commits = log_commits(big);
    let mut commits = first_commits;
    let mut others_moved = false;
    while copying(big) {
        assert!(Instant::now() < deadline, "the re-copy did not finish; log:\n{}", pipeline.log_text());
        pipeline.assert_running();
        if kills == 0 {
            if let Some(l) = lag(address) {
                max_lag = max_lag.max(l);
                lag_samples += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
        let now = log_commits(big);
        if kills == KILLS || now <= commits || now < first_commits + KILL_FROM_COMMIT {
            continue;
        }
        // The first kill waits until the others have committed 3 times each
        // during the copy (a fast machine reaches the copy's 4th commit
        // sooner); a copy that holds them up fails below.
        if kills == 0 {
            others_moved = others.iter().zip(&versions_before).all(|(path, before)| delta_version(path) >= before + 3);
            if !others_moved {
                continue;
            }
        }
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(seed % 800));
        if !copying(big) {
            break;
        }
        if kills == 0 {
            let out = tributary(&["status", "--config", config.to_str().unwrap()]);
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            if copying(big) {
                assert!(text.contains("snapshot: copy in progress"), "status during the re-copy:\n{text}");
            }
        }
        pipeline.kill9();
        kills += 1;
        pipeline = Pipeline::start(config);
        let wait = Instant::now() + Duration::from_secs(60);
        loop {
            let log = pipeline.log_text();
            if let Some(line) = log.lines().find(|l| l.contains("snapshot continues from its last committed chunk")) {
                eprintln!("restart {kills}: {line}");
                resumed += 1;
                break;
            }
            assert!(Instant::now() < wait, "the restart did not continue the re-copy; log:\n{log}");
            pipeline.assert_running();
            std::thread::sleep(Duration::from_millis(50));
        }
        commits = log_commits(big);
    }
    eprintln!(
        "re-copy done in {:.1} s; {kills} kill -9, {resumed} resumed; the pipeline's lag at most {max_lag:.1} s \
         over {lag_samples} samples before the kills",
        requested.elapsed().as_secs_f64()
    );
    assert!(others_moved, "the other tables did not commit 3 times each during the re-copy");
    assert!(kills == KILLS && resumed == kills, "kills during the re-copy: {kills}, resumed {resumed}");
    assert!(lag_samples >= 5, "lag samples during the copy: {lag_samples}");
    assert!(max_lag <= LAG_BOUND_SECS, "the other tables' lag during the re-copy: {max_lag:.1} s");
    pipeline
}

/// No insert reached `path`'s change feed twice since Delta version `from`
/// (the stream is read again from a re-copy's start), and some did.
pub fn assert_inserts_once(python: &Path, path: &Path, from: i64) {
    let feed = super::change_feed(python, path, from + 1);
    let mut inserts = super::feed_ids(&feed, "insert");
    let count = inserts.len();
    inserts.sort_unstable();
    inserts.dedup();
    assert_eq!(inserts.len(), count, "{}: an insert reached Delta twice", path.display());
    assert!(count > 10, "{}: the workload's inserts are in the feed ({count})", path.display());
}

/// The mirror's `id<TAB>md5` lines equal the source's; otherwise the ids only
/// one side holds and those whose rows differ are named.
pub fn assert_mirror_is(what: &str, source: &[String], mirror: &[String]) {
    if source == mirror {
        return;
    }
    let split = |lines: &[String]| -> std::collections::BTreeMap<String, String> {
        lines.iter().filter_map(|l| l.split_once('\t')).map(|(a, b)| (a.to_string(), b.to_string())).collect()
    };
    let (s, m) = (split(source), split(mirror));
    let only_source: Vec<&String> = s.keys().filter(|k| !m.contains_key(*k)).take(20).collect();
    let only_mirror: Vec<&String> = m.keys().filter(|k| !s.contains_key(*k)).take(20).collect();
    let differ: Vec<&String> = s.keys().filter(|k| m.get(*k).is_some_and(|v| v != &s[*k])).take(20).collect();
    panic!(
        "{what}: mirror ({} rows) != source ({} rows); only in the source: {only_source:?}; only in the mirror: \
         {only_mirror:?}; different: {differ:?}",
        mirror.len(),
        source.len()
    );
}
