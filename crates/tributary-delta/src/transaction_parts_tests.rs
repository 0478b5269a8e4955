//! A source transaction applied in parts ([`TableWriter::apply_part`], then
//! [`TableWriter::apply`] with its rest) against real Delta tables: it lands
//! in one commit with the same rows and change feed as the same changes in
//! one batch, in both update modes, keys touched again in later parts
//! included; abandoned parts leave nothing; a conflict that invalidates the
//! parts refuses the commit and deletes their files.

use crate::config::UpdateMode;
use crate::tests::{batch, del, ins, item, items_schema, upd, APP};
use crate::{read_changes, read_rows, CompactionOptions, DeltaError, DeltaSinkConfig, TableBatch, TableWriter};
use std::collections::BTreeSet;
use std::path::Path;
use tributary_core::RowChange;

fn config(dir: &Path, mode: UpdateMode) -> DeltaSinkConfig {
    DeltaSinkConfig { update_mode: Some(mode), ..DeltaSinkConfig::with_root(dir) }
}

/// A table of three files (ids 1..=10, 11..=20, 21..=30).
async fn three_files(dir: &Path, mode: UpdateMode) -> TableWriter {
    let mut w = TableWriter::open_or_create(&config(dir, mode), items_schema(true), APP).await.unwrap();
    for f in 0..3 {
        let rows = (1..=10).map(|i| ins(item(f * 10 + i, &format!("n{}", f * 10 + i), 0))).collect();
        w.apply(&batch(rows, 100 + f as u64)).await.unwrap();
    }
    w
}

/// One transaction: keys updated in one part and again in later ones (their
/// rows then sit in files an earlier part wrote), a key inserted then
/// updated, deletes, in four pieces.
fn transaction() -> Vec<Vec<RowChange>> {
    vec![
        vec![
            upd(item(1, "n1", 0), item(1, "a", 1)),
            ins(item(99, "new", 0)),
            upd(item(12, "n12", 0), item(12, "a", 1)),
        ],
        vec![upd(item(1, "a", 1), item(1, "b", 2)), del(item(15, "n15", 0)), upd(item(99, "new", 0), item(99, "b", 1))],
        vec![upd(item(12, "a", 1), item(12, "c", 2)), upd(item(25, "n25", 0), item(25, "c", 1))],
        vec![del(item(1, "b", 2)), upd(item(99, "b", 1), item(99, "d", 2)), ins(item(1, "back", 3))],
    ]
}

/// `changes` as one piece of a transaction at `at`, its first change being the `first`-th.
fn piece(changes: Vec<RowChange>, at: u64, first: i64) -> TableBatch {
    let mut b = batch(changes, at);
    for c in &mut b.changes {
        c.change_seq += first;
    }
    b
}

/// Rows (source columns) and change feed from `from` on (type, id, name,
/// sequence), sorted: what a reader sees.
async fn seen(path: &Path, from: i64) -> (Vec<String>, Vec<String>) {
    let mut rows: Vec<String> =
        read_rows(path).await.unwrap().iter().map(|r| format!("{} {} {}", r["id"], r["name"], r["qty"])).collect();
    rows.sort();
    let mut feed: Vec<String> = read_changes(path, from, None)
        .await
        .unwrap()
        .iter()
        .map(|r| {
            let seq = &r.values["_tributary_change_seq"];
            format!("{} {} {} {}", r.change_type, r.values["id"], r.values["name"], seq)
        })
        .collect();
    feed.sort();
    (rows, feed)
}

fn parquet_files(path: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for dir in [path.to_path_buf(), path.join("_change_data")] {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            if name.ends_with(".parquet") || name.ends_with(".bin") {
                out.insert(name);
            }
        }
    }
    out
}

async fn parts_land_like_one_batch(mode: UpdateMode) {
    let (whole_dir, parts_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut whole = three_files(whole_dir.path(), mode).await;
    let mut parted = three_files(parts_dir.path(), mode).await;
    let start = whole.delta_version();
    assert_eq!(parted.delta_version(), start);

    let all: Vec<RowChange> = transaction().into_iter().flatten().collect();
    whole.apply(&batch(all, 500)).await.unwrap();

    // The parts carry the position where the transaction began (400); the rest commits at 500.
    let pieces = transaction();
    let last = pieces.len() - 1;
    let mut first = 0i64;
    for (i, changes) in pieces.into_iter().enumerate() {
        let n = changes.len() as i64;
        if i < last {
            parted.apply_part(&piece(changes, 400, first)).await.unwrap();
            assert!(parted.has_open_parts());
            assert_eq!(parted.delta_version(), start, "a part commits nothing");
        } else {
            let mut rest = piece(changes, 400, first);
            rest.position = crate::tests::pos(500);
            parted.apply(&rest).await.unwrap();
        }
        first += n;
    }
    assert!(!parted.has_open_parts());
    assert_eq!(parted.delta_version(), start + 1, "one commit for the whole transaction");
    assert_eq!(parted.committed_version(), whole.committed_version());

    let (whole_path, parted_path) = (whole.path().to_path_buf(), parted.path().to_path_buf());
    let (whole_rows, whole_feed) = seen(&whole_path, start + 1).await;
    let (parted_rows, parted_feed) = seen(&parted_path, start + 1).await;
    assert_eq!(parted_rows, whole_rows, "same rows");
    assert_eq!(parted_feed, whole_feed, "same change feed");
    assert!(
        parted_rows.iter().any(|r| r.starts_with("1 \"back\"")) && !parted_rows.iter().any(|r| r.starts_with("15 "))
    );

    // The table reopens to the same state and keeps streaming.
    drop(parted);
    let mut reopened =
        TableWriter::open_or_create(&config(parts_dir.path(), mode), items_schema(true), APP).await.unwrap();
    reopened.apply(&batch(vec![upd(item(2, "n2", 0), item(2, "later", 1))], 600)).await.unwrap();
    whole.apply(&batch(vec![upd(item(2, "n2", 0), item(2, "later", 1))], 600)).await.unwrap();
    assert_eq!(seen(&parted_path, start + 1).await, seen(&whole_path, start + 1).await);
}

#[tokio::test]
async fn a_transaction_applied_in_parts_lands_in_one_commit_like_one_batch_with_rewrites() {
    parts_land_like_one_batch(UpdateMode::Rewrite).await;
}

#[tokio::test]
async fn a_transaction_applied_in_parts_lands_in_one_commit_like_one_batch_with_deletion_vectors() {
    parts_land_like_one_batch(UpdateMode::DeletionVectors).await;
}

#[tokio::test]
async fn abandoned_parts_leave_no_file_and_the_table_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = three_files(dir.path(), UpdateMode::Rewrite).await;
    let (version, files) = (w.delta_version(), parquet_files(w.path()));
    let pieces = transaction();
    w.apply_part(&piece(pieces[0].clone(), 400, 0)).await.unwrap();
    w.apply_part(&piece(pieces[1].clone(), 400, 3)).await.unwrap();
    assert!(parquet_files(w.path()).len() > files.len(), "the parts wrote files");
    w.abandon_parts();
    assert!(!w.has_open_parts());
    assert_eq!(parquet_files(w.path()), files, "their files are deleted");
    assert_eq!(w.delta_version(), version);
    // The transaction read again from the source lands whole.
    let all: Vec<RowChange> = transaction().into_iter().flatten().collect();
    w.apply(&batch(all, 500)).await.unwrap();
    assert_eq!(w.delta_version(), version + 1);
    assert_eq!(read_rows(w.path()).await.unwrap().len(), 30);
}

#[tokio::test]
async fn a_part_at_or_below_the_tables_position_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = three_files(dir.path(), UpdateMode::Rewrite).await;
    let written = w.apply_part(&piece(transaction()[0].clone(), 102, 0)).await.unwrap();
    assert_eq!(written, 0);
    assert!(!w.has_open_parts(), "the table holds that transaction already");
}

#[tokio::test]
async fn a_conflict_that_invalidates_the_parts_refuses_the_commit_and_deletes_their_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = three_files(dir.path(), UpdateMode::Rewrite).await;
    let pieces = transaction();
    let before = parquet_files(w.path());
    w.apply_part(&piece(pieces[0].clone(), 400, 0)).await.unwrap();
    let part_files: BTreeSet<String> = parquet_files(w.path()).difference(&before).cloned().collect();
    assert!(!part_files.is_empty());
    // Another process compacts the files the part read.
    let mut other =
        TableWriter::open_or_create(&config(dir.path(), UpdateMode::Rewrite), items_schema(true), APP).await.unwrap();
    let options = CompactionOptions { target_file_bytes: 1 << 30, min_small_files: 2, max_bytes_per_run: 1 << 30 };
    other.compact(&options).await.unwrap().expect("compacted");
    let mut rest = piece(pieces[1].clone(), 400, 3);
    rest.position = crate::tests::pos(500);
    let err = w.apply(&rest).await.unwrap_err();
    assert!(matches!(err, DeltaError::State { .. }), "{err}");
    assert!(!w.has_open_parts());
    let left: Vec<String> = parquet_files(w.path()).intersection(&part_files).cloned().collect();
    assert!(left.is_empty(), "the parts' files are deleted: {left:?}");
    // The transaction read again lands on the compacted table.
    let all: Vec<RowChange> = pieces[..2].iter().flatten().cloned().collect();
    w.apply(&batch(all, 500)).await.unwrap();
    assert_eq!(read_rows(w.path()).await.unwrap().len(), 30);
}
