//! What the chunked-snapshot tests share (docs/snapshots.md): kill -9 at
//! random moments of a copy and the check that each restart continued it,
//! and a catch-up wait with room for a big copy-on-write table.

use super::{tributary, Pipeline, APP};
use std::path::Path;
use std::time::{Duration, Instant};

/// True once the table holds a committed position (its copy is done).
pub fn snapshot_done(path: &Path) -> bool {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    tributary_delta::table_exists(path)
        && rt.block_on(tributary_delta::table_status(path, APP)).is_ok_and(|s| s.committed_version.is_some())
}

/// Commit files in the table's `_delta_log`.
fn log_commits(path: &Path) -> usize {
    std::fs::read_dir(path.join("_delta_log"))
        .map(|d| d.filter(|e| e.as_ref().is_ok_and(|e| e.path().extension().is_some_and(|x| x == "json"))).count())
        .unwrap_or(0)
}

/// A log line without its colour escapes.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            chars.by_ref().find(|&c| c == 'm');
        } else {
            out.push(c);
        }
    }
    out
}

/// How the kills of [`kill_during_copy`] went.
struct Kills {
    /// The pipeline started after the last kill.
    pipeline: Pipeline,
    /// Kills that came while the copy was not done.
    mid_copy: usize,
    /// Restarts that continued the copy from rows already copied.
    resumed: usize,
}

/// `kills` times: waits for one more commit of the copy, then a random
/// moment (up to 0.8 s), checks that `tributary status` says the copy is in
/// progress, kill -9, a restart; then reads whether the restart continued the
/// copy (and from how many of the `rows` already copied).
fn kill_during_copy(mut pipeline: Pipeline, config: &Path, path: &Path, rows: u64, kills: usize) -> Kills {
    let (mut mid_copy, mut resumed) = (0, 0);
    let mut seed = u64::from(std::process::id()) | 1;
    for kill in 0..kills {
        let commits = log_commits(path);
        let deadline = Instant::now() + Duration::from_secs(120);
        while log_commits(path) <= commits.max(1) && !snapshot_done(path) && Instant::now() < deadline {
            pipeline.assert_running();
            std::thread::sleep(Duration::from_millis(50));
        }
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(seed % 800));
        if !snapshot_done(path) {
            mid_copy += 1;
            let out = tributary(&["status", "--config", config.to_str().unwrap()]);
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            if !snapshot_done(path) {
                assert!(text.contains("snapshot: copy in progress"), "status mid-copy:\n{text}");
            }
        }
        pipeline.kill9();
        pipeline = Pipeline::start(config);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let log = pipeline.log_text();
            if let Some(line) = log.lines().find(|l| l.contains("snapshot continues from its last committed chunk")) {
                let line = strip_ansi(line);
                eprintln!("restart {kill}: {line}");
                let copied = line.split("rows_already_copied=").nth(1).and_then(|r| r.split(' ').next());
                let copied: u64 = copied.and_then(|c| c.parse().ok()).unwrap_or_else(|| panic!("{line}"));
                assert!(copied > 0 && copied < rows + 100_000, "rows already copied: {line}");
                resumed += 1;
                break;
            }
            if log.contains("chunked snapshot started") || snapshot_done(path) || Instant::now() > deadline {
                eprintln!("restart {kill}: the copy did not continue (done, or nothing committed yet)");
                break;
            }
            pipeline.assert_running();
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    eprintln!("{kills} kill -9 ({mid_copy} during the copy, {resumed} resumed the copy)");
    Kills { pipeline, mid_copy, resumed }
}

/// Starts the pipeline, kills it `kills` times during the copy
/// ([`kill_during_copy`]; at least 3 kills must hit the copy and at least 3
/// restarts continue it), and waits until the copy is done.
pub fn copy_through_kills(config: &Path, path: &Path, rows: u64, kills: usize) -> Pipeline {
    let started = Instant::now();
    let killed = kill_during_copy(Pipeline::start(config), config, path, rows, kills);
    assert!(killed.mid_copy >= 3, "at least 3 kills hit the copy ({})", killed.mid_copy);
    assert!(
        killed.resumed >= 3,
        "at least 3 restarts continued the copy instead of starting over ({})",
        killed.resumed
    );
    let mut pipeline = killed.pipeline;
    wait_copied(&mut pipeline, path);
    eprintln!("copy done {:.1?} after the first start", started.elapsed());
    pipeline
}

/// Waits up to 10 min until the copy is done (the workload may still run).
fn wait_copied(pipeline: &mut Pipeline, path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(600);
    while !snapshot_done(path) {
        assert!(Instant::now() < deadline, "the copy did not finish; log:\n{}", pipeline.log_text());
        pipeline.assert_running();
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// [`super::wait_committed`] with room (10 min) for the catch-up of a big copy-on-write table.
pub fn wait_long(pipeline: &mut Pipeline, path: &Path, version: i64) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        pipeline.assert_running();
        let status = rt.block_on(tributary_delta::table_status(path, APP));
        if status.is_ok_and(|s| s.committed_version.is_some_and(|v| v >= version)) {
            return;
        }
        assert!(Instant::now() < deadline, "no catch-up to {version} in 10 min; log:\n{}", pipeline.log_text());
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The `TRIBUTARY_TEST_SNAPSHOT_ROWS` table size (default 2,000,000).
pub fn rows() -> u64 {
    std::env::var("TRIBUTARY_TEST_SNAPSHOT_ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(2_000_000)
}

/// `[sink.delta] target_file_rows` of a tenth of the table (20k – 200k) and
/// 5 s batches: random-key updates rewrite most files of a copy-on-write
/// table, big batches keep the catch-up short in a debug build. An idle
/// table's position follows the source after 2 s (the waits compare it
/// with the server's current position).
pub fn tune_config(config: &Path, rows: u64) {
    let files = (rows / 10).clamp(20_000, 200_000);
    let text = std::fs::read_to_string(config).unwrap();
    let text = text.replace("checkpoint_interval = 5", &format!("checkpoint_interval = 5\ntarget_file_rows = {files}"));
    let text = text.replace("batch_max_wait_ms = 200", "batch_max_wait_ms = 5000\nidle_commit_secs = 2");
    std::fs::write(config, text).unwrap();
}

/// The change feed after the hand-over holds exactly these changes: one
/// `insert` per inserted id, one `update_postimage` per updated id, one
/// `delete` per deleted id.
pub fn assert_feed_is(
    feed: &[serde_json::Map<String, serde_json::Value>],
    inserted: &[i64],
    updated: &[i64],
    deleted: &[i64],
) {
    let ids = |t: &str| {
        let mut ids: Vec<i64> = super::feed_ids(feed, t);
        ids.sort_unstable();
        ids
    };
    let sorted = |v: &[i64]| {
        let mut v = v.to_vec();
        v.sort_unstable();
        v
    };
    assert_eq!(ids("insert"), sorted(inserted), "inserts after the hand-over");
    assert_eq!(ids("update_postimage"), sorted(updated), "updates after the hand-over");
    assert_eq!(ids("update_preimage"), sorted(updated), "pre-images after the hand-over");
    assert_eq!(ids("delete"), sorted(deleted), "deletes after the hand-over");
}

/// The table's latest Delta version.
pub fn delta_version(path: &Path) -> i64 {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(tributary_delta::table_status(path, APP)).unwrap().version
}
