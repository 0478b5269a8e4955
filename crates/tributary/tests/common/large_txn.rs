//! Helpers of the huge-transaction tests (`large_transaction_*.rs`): the
//! sizes, the memory bound, a change-feed summary and a mirror checksum that
//! stay cheap for hundreds of thousands of rows.

use super::{read, Pipeline, APP, CATCH_UP};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Rows per part (`pipeline.transaction_part_rows`): a transaction larger than this is applied in parts.
/// `TRIBUTARY_BIG_TXN_PART_ROWS`, else 50,000.
pub fn part_rows() -> u64 {
    std::env::var("TRIBUTARY_BIG_TXN_PART_ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(50_000)
}

/// Peak RSS the pipeline must stay under while it applies the huge
/// transactions (the brief's bound for the whole process: 256 MB).
pub const PEAK_RSS_BOUND_KIB: u64 = 256 * 1024;

/// The table size: `TRIBUTARY_BIG_TXN_ROWS`, else `default`.
pub fn table_rows(default: u64) -> u64 {
    std::env::var("TRIBUTARY_BIG_TXN_ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Waits until the pipeline's log holds `needle`.
pub fn wait_log(pipeline: &mut Pipeline, needle: &str) {
    let start = Instant::now();
    while !pipeline.log_text().contains(needle) {
        pipeline.assert_running();
        assert!(start.elapsed() < CATCH_UP * 4, "no {needle:?} in the log:\n{}", pipeline.log_text());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// [`super::wait_committed`] with room for a huge transaction: waits up to
/// `within` until the table's committed position reaches `version`.
pub fn wait_committed_within(pipeline: &mut Pipeline, path: &Path, version: i64, within: Duration) {
    let start = Instant::now();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    loop {
        pipeline.assert_running();
        if let Ok(status) = rt.block_on(tributary_delta::table_status(path, APP)) {
            if status.committed_version.is_some_and(|v| v >= version) {
                return;
            }
        }
        assert!(start.elapsed() < within, "{} did not reach {version} in {within:?}", path.display());
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The table's current Delta version.
pub fn delta_version(python: &Path, path: &Path) -> i64 {
    read(python, &["txn", path.to_str().unwrap(), APP])["version"].as_i64().unwrap()
}

/// The change feed from a version on, summed up in Python (it is too large
/// to pass as JSON rows): per id the count of each change type, and the
/// commit versions holding each type.
pub struct FeedSummary {
    pub counts: BTreeMap<i64, [u64; 4]>,
    pub versions: BTreeMap<String, BTreeSet<i64>>,
}

pub const TYPES: [&str; 4] = ["insert", "update_preimage", "update_postimage", "delete"];

impl FeedSummary {
    /// Rows shaped like [`change_feed`]'s (id and change type), the snapshot's
    /// rows counted as inserted (they are, in the feed from version 0).
    pub fn rows(&self, snapshot: &BTreeSet<i64>) -> Vec<serde_json::Map<String, serde_json::Value>> {
        let row = |id: i64, t: &str| {
            let mut m = serde_json::Map::new();
            m.insert("id".into(), id.into());
            m.insert("_change_type".into(), t.into());
            m
        };
        let mut out: Vec<_> = snapshot.iter().map(|&id| row(id, "insert")).collect();
        for (&id, counts) in &self.counts {
            for (t, &n) in TYPES.iter().zip(counts) {
                out.extend((0..n).map(|_| row(id, t)));
            }
        }
        out
    }
}

pub fn feed_summary(python: &Path, path: &Path, from: i64) -> FeedSummary {
    let script = r#"
import json, os, sys
import pyarrow as pa
from deltalake import DeltaTable
dt = DeltaTable(sys.argv[1])
t = pa.RecordBatchReader.from_stream(dt.load_cdf(starting_version=int(sys.argv[2]))).read_all()
types = ["insert", "update_preimage", "update_postimage", "delete"]
counts, versions = {}, {}
for b in t.select(["id", "_change_type", "_commit_version"]).to_batches():
    for i, ct, v in zip(b.column(0).to_pylist(), b.column(1).to_pylist(), b.column(2).to_pylist()):
        counts.setdefault(i, [0, 0, 0, 0])[types.index(ct)] += 1
        versions.setdefault(ct, set()).add(v)
print(json.dumps({k: sorted(v) for k, v in versions.items()}))
for i, c in counts.items():
    print(i, *c)
sys.stdout.flush()
os._exit(0)
"#;
    let out = Command::new(python).args(["-c", script]).arg(path).arg(from.to_string()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    let versions: BTreeMap<String, BTreeSet<i64>> = serde_json::from_str(lines.next().unwrap()).unwrap();
    let counts = lines
        .map(|l| {
            let n: Vec<i64> = l.split(' ').map(|c| c.parse().unwrap()).collect();
            (n[0], [n[1] as u64, n[2] as u64, n[3] as u64, n[4] as u64])
        })
        .collect();
    FeedSummary { counts, versions }
}

/// Like `mirror_checksums`, through delta-rs' DataFusion scan (which applies
/// deletion vectors; its pyarrow dataset refuses them).
pub fn mirror_checksums_scan(python: &Path, path: &Path) -> Vec<String> {
    let script = r#"
import hashlib, os, sys
import pyarrow as pa
from deltalake import DeltaTable, QueryBuilder
dt = DeltaTable(sys.argv[1])
reader = QueryBuilder().register("t", dt).execute("SELECT id, v, w FROM t")
t = pa.RecordBatchReader.from_stream(reader).read_all().to_pylist()
t.sort(key=lambda r: r["id"])
for r in t:
    parts = [str(r["id"])] + [str(x) for x in (r["v"], r["w"]) if x is not None]
    print(f'{r["id"]}\t' + hashlib.md5("|".join(parts).encode()).hexdigest())
sys.stdout.flush()
os._exit(0)
"#;
    let out = Command::new(python).args(["-c", script]).arg(path).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().lines().map(str::to_string).collect()
}
