//! The writer in deletion-vector mode (`update_mode = "deletion_vectors"`):
//! a scripted workload (updates, deletes, delete + re-insert of one key in one
//! batch, primary-key changes, vectors in `.bin` files,
//! compaction, TRUNCATE) against a model of the table. After every batch no
//! data file is rewritten (each `remove` is the same path re-added with its
//! merged vector), the mirror equals the model and the change feed equals the
//! model's changes, read by Tributary and by Spark 3.5 + Delta 3.x. Also: an
//! existing table without deletion vectors is never upgraded silently, and
//! another writer re-vectoring a file the batch marks makes it re-plan
//! without losing either writer's marks.

use crate::commit::{CommitKind, CommitNote};
use crate::config::UpdateMode;
use crate::deletion_vector::Placement;
use crate::deletion_vector_commit::commit_deleted_rows;
use crate::deletion_vector_tests::{data_file, delete_cdc};
use crate::tests::{actions, batch, del, ins, item, items_schema, upd, APP};
use crate::{read_changes, read_rows, table_status, CompactionOptions, DeltaSinkConfig, TableWriter};
use roaring::RoaringTreemap;
use serde_json::Value as J;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use tributary_core::RowChange;

fn dv_cfg(dir: &Path) -> DeltaSinkConfig {
    DeltaSinkConfig { update_mode: Some(UpdateMode::DeletionVectors), ..DeltaSinkConfig::with_root(dir) }
}

/// One change-feed row: (version, change type, id, name, qty).
type Change = (i64, String, i64, String, i64);

/// What the table must hold, and the change feed it must have recorded.
#[derive(Default)]
struct Model {
    rows: BTreeMap<i64, (String, i64)>,
    feed: Vec<Change>,
}

impl Model {
    /// Applies a batch the way the source ran it; its changes land at `version`.
    fn apply(&mut self, changes: &[RowChange], version: i64) {
        let parse = |row: &[tributary_core::Value]| match row {
            [tributary_core::Value::Int(id), tributary_core::Value::Text(name), tributary_core::Value::Int(qty)] => {
                (*id, name.clone(), *qty)
            }
            other => panic!("not an item: {other:?}"),
        };
        let mut out = |kind: &str, (id, name, qty): (i64, String, i64)| {
            self.feed.push((version, kind.to_string(), id, name, qty));
        };
        for change in changes {
            match change {
                RowChange::Insert { after } => {
                    let (id, name, qty) = parse(after);
                    match self.rows.insert(id, (name.clone(), qty)) {
                        Some((n, q)) => {
                            out("update_preimage", (id, n, q));
                            out("update_postimage", (id, name, qty));
                        }
                        None => out("insert", (id, name, qty)),
                    }
                }
                RowChange::Update { before, after } => {
                    let (old_id, ..) = parse(before);
                    let (id, name, qty) = parse(after);
                    let (n, q) = self.rows.remove(&old_id).expect("updates of stored keys");
                    if let Some((on, oq)) = self.rows.insert(id, (name.clone(), qty)) {
                        out("delete", (id, on, oq));
                    }
                    out("update_preimage", (old_id, n, q));
                    out("update_postimage", (id, name, qty));
                }
                RowChange::Delete { before } => {
                    let (id, ..) = parse(before);
                    let (n, q) = self.rows.remove(&id).expect("deletes of stored keys");
                    out("delete", (id, n, q));
                }
                RowChange::Truncate => {
                    for (id, (n, q)) in std::mem::take(&mut self.rows) {
                        out("delete", (id, n, q));
                    }
                }
            }
        }
    }

    fn item(&self, id: i64) -> Vec<tributary_core::Value> {
        let (name, qty) = &self.rows[&id];
        item(id, name, *qty)
    }

    fn rows_json(&self) -> Vec<(i64, String, i64)> {
        self.rows.iter().map(|(id, (n, q))| (*id, n.clone(), *q)).collect()
    }

    fn feed_from(&self, version: i64) -> Vec<Change> {
        let mut feed: Vec<Change> = self.feed.iter().filter(|c| c.0 >= version).cloned().collect();
        feed.sort();
        feed
    }
}

fn row_of(r: &serde_json::Map<String, J>) -> (i64, String, i64) {
    (r["id"].as_i64().unwrap(), r["name"].as_str().unwrap().to_string(), r["qty"].as_i64().unwrap())
}

async fn mirror(path: &Path) -> Vec<(i64, String, i64)> {
    let mut rows: Vec<_> = read_rows(path).await.unwrap().iter().map(row_of).collect();
    rows.sort();
    rows
}

async fn our_feed(path: &Path, from: i64) -> Vec<Change> {
    let mut feed: Vec<Change> = read_changes(path, from, None)
        .await
        .unwrap()
        .iter()
        .map(|c| {
            let (id, name, qty) = row_of(&c.values);
            (c.commit_version, c.change_type.clone(), id, name, qty)
        })
        .collect();
    feed.sort();
    feed
}

/// The active data files of the table's latest version with their vectors' cardinality.
async fn active(path: &Path) -> BTreeMap<String, Option<i64>> {
    let table = crate::table::open_existing(path).await.unwrap();
    let state = table.snapshot().unwrap();
    state
        .log_data()
        .iter()
        .map(|f| (f.path().to_string(), f.deletion_vector_descriptor().map(|d| d.cardinality)))
        .collect()
}

/// Asserts that commit `version` rewrote no data file: each `remove` is of a
/// path the same commit adds again with a deletion vector, and it has a
/// change-data file.
fn assert_only_marks(path: &Path, version: i64) {
    let a = actions(path, version);
    let added: BTreeMap<&str, &J> =
        a.get("add").into_iter().flatten().map(|add| (add["path"].as_str().unwrap(), add)).collect();
    for rm in a.get("remove").into_iter().flatten() {
        let p = rm["path"].as_str().unwrap();
        let add = added.get(p).unwrap_or_else(|| panic!("v{version} removed {p} without adding it back"));
        assert!(add["deletionVector"].is_object(), "v{version}: {p} re-added without a vector");
        let stats: J = serde_json::from_str(add["stats"].as_str().unwrap()).unwrap();
        assert_eq!(stats["tightBounds"], false);
    }
    assert!(a.contains_key("cdc"), "v{version} carries its change data");
}

#[tokio::test]
async fn deletion_vector_mode_marks_rows_instead_of_rewriting_and_spark_reads_the_mirror_and_feed() {
    let spark = tributary_testkit::require(
        "Spark verifier (pyspark + Delta jars; `make setup`)",
        tributary_testkit::SparkVerifier::shared(),
    );
    let Some(spark) = spark else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut w = TableWriter::open_or_create(&dv_cfg(dir.path()), items_schema(true), APP).await.unwrap();
    assert!(w.uses_deletion_vectors());
    let path = w.path().to_path_buf();
    let created = actions(&path, 0);
    let features = created["protocol"][0]["writerFeatures"].as_array().unwrap();
    assert!(features.iter().any(|f| f == "deletionVectors"), "{features:?}");
    assert!(created["protocol"][0]["readerFeatures"].as_array().unwrap().iter().any(|f| f == "deletionVectors"));
    assert_eq!(created["metaData"][0]["configuration"]["delta.enableDeletionVectors"], "true");

    let mut model = Model::default();
    let mut at = 100;
    // Applies `changes` to the table and the model; returns the new version.
    macro_rules! step {
        ($changes:expr) => {{
            let changes: Vec<RowChange> = $changes;
            at += 1;
            let stats = w.apply(&batch(changes.clone(), at)).await.unwrap();
            model.apply(&changes, stats.delta_version);
            stats
        }};
    }
    let first = step!((1..=300).map(|i| ins(item(i, &format!("n{i}"), i))).collect());
    step!((301..=340).map(|i| ins(item(i, &format!("n{i}"), i))).collect());
    let originals: BTreeSet<String> = active(&path).await.into_keys().collect();
    assert_eq!(originals.len(), 2);

    // Updates, a delete, delete + re-insert of one key, a PK change, one key
    // updated twice, a new key.
    let b3 = step!(vec![
        upd(model.item(3), item(3, "n3", 33)),
        del(model.item(325)),
        del(model.item(7)),
        ins(item(7, "again", 70)),
        upd(model.item(10), item(500, "n10", 10)),
        upd(model.item(12), item(12, "n12", 13)),
        upd(item(12, "n12", 13), item(12, "n12", 14)),
        ins(item(600, "new", 1)),
    ]);
    let feed_from = b3.delta_version;
    assert_eq!((b3.files_removed, b3.rows_copied), (0, 0), "nothing rewritten");
    assert_only_marks(&path, b3.delta_version);
    // Keys whose live row is now in a new file (3, 7, 12), the moved key
    // (500), a second mark in file A (1, 2), a PK change onto a freed key.
    let b4 = step!(vec![
        upd(item(3, "n3", 33), item(3, "n3", 34)),
        del(item(500, "n10", 10)),
        upd(item(7, "again", 70), item(7, "again", 71)),
        del(model.item(1)),
        del(model.item(2)),
        upd(model.item(330), item(10, "n330", 330)),
    ]);
    assert_only_marks(&path, b4.delta_version);
    assert_eq!(mirror(&path).await, model.rows_json());
    // Many marks in file A (a large vector).
    let b5 = step!((51..=299).step_by(2).map(|i| upd(model.item(i), item(i, &format!("n{i}"), i + 1000))).collect());
    assert_only_marks(&path, b5.delta_version);
    // Every vector, small or large, is in a `.bin` file (Spark's DML refuses
    // inline ones): one file per commit that marked rows.
    let mut marking_commits = 0;
    for version in 0..=b5.delta_version {
        let vectors: Vec<J> = actions(&path, version)
            .get("add")
            .into_iter()
            .flatten()
            .filter_map(|a| a.get("deletionVector").filter(|d| d.is_object()).cloned())
            .collect();
        assert!(vectors.iter().all(|d| d["storageType"] == "u"), "version {version}: {vectors:?}");
        marking_commits += usize::from(!vectors.is_empty());
    }
    let bins = std::fs::read_dir(&path)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with("deletion_vector_"));
    assert!(marking_commits >= 2, "b4 and b5 at least");
    assert_eq!(bins.count(), marking_commits);
    // Delete + re-insert of keys whose rows sit in a file with a `.bin` vector.
    let b6 = step!(vec![del(model.item(53)), ins(item(53, "back", 53)), del(model.item(54))]);
    assert_only_marks(&path, b6.delta_version);

    let files = active(&path).await;
    assert!(originals.iter().all(|f| files.contains_key(f)), "the first two files are never rewritten");
    assert!(originals.iter().all(|f| files[f].is_some()), "both carry a vector: {files:?}");
    assert_eq!(mirror(&path).await, model.rows_json());
    assert_eq!(our_feed(&path, feed_from).await, model.feed_from(feed_from));
    assert_eq!(table_status(&path, APP).await.unwrap().rows, Some(model.rows.len() as i64));

    // Spark: the mirror, the feed, and the version before any mark.
    let spark_rows = |version: Option<i64>| {
        let rows = match version {
            Some(v) => spark.rows_at(&path, v, &["id"]).unwrap(),
            None => spark.rows(&path, &["id"]).unwrap(),
        };
        rows.iter().map(row_of).collect::<Vec<_>>()
    };
    let spark_feed = |from: i64| {
        let mut feed: Vec<Change> = spark
            .cdf(&path, from, None, &["_commit_version", "id"])
            .unwrap()
            .iter()
            .map(|r| {
                let (id, name, qty) = row_of(r);
                (r["_commit_version"].as_i64().unwrap(), r["_change_type"].as_str().unwrap().to_string(), id, name, qty)
            })
            .collect();
        feed.sort();
        feed
    };
    assert_eq!(spark_rows(None), model.rows_json());
    assert_eq!(spark.count_at(&path, first.delta_version).unwrap(), 300);
    assert_eq!(spark_feed(feed_from), model.feed_from(feed_from));

    // Compaction purges the vectors: new files without marks, same rows,
    // nothing in the change feed; the version before it still reads the same.
    let before_compaction = w.delta_version();
    let options = CompactionOptions { target_file_bytes: 1 << 30, min_small_files: 2, max_bytes_per_run: 1 << 30 };
    let compacted = w.compact(&options).await.unwrap().expect("compacted");
    assert!(compacted.files_removed >= 2);
    assert_eq!(compacted.rows, model.rows.len() as u64, "deleted rows are not copied");
    assert!(active(&path).await.values().all(Option::is_none), "vectors purged");
    let removes = &actions(&path, compacted.delta_version)["remove"];
    assert!(removes.iter().any(|r| r["deletionVector"].is_object()), "removes name the vector of the file");
    assert_eq!(mirror(&path).await, model.rows_json());
    assert_eq!(spark_rows(None), model.rows_json());
    assert_eq!(spark.count_at(&path, before_compaction).unwrap(), model.rows.len() as u64);

    // Marks in the compacted file, then TRUNCATE and new rows in one batch.
    let b7 = step!(vec![upd(model.item(4), item(4, "n4", 44)), del(model.item(5))]);
    assert_only_marks(&path, b7.delta_version);
    let b8 = step!(vec![RowChange::Truncate, ins(item(1, "fresh", 1)), ins(item(2, "fresh", 2))]);
    assert!(b8.files_removed >= 1);
    assert_eq!(mirror(&path).await, model.rows_json());
    assert_eq!(our_feed(&path, feed_from).await, model.feed_from(feed_from));
    assert_eq!(spark_rows(None), model.rows_json());
    assert_eq!(spark_feed(feed_from), model.feed_from(feed_from));

    // A restart reads the vectors back from the log.
    drop(w);
    let mut w = TableWriter::open_or_create(&dv_cfg(dir.path()), items_schema(true), APP).await.unwrap();
    let b9 = w.apply(&batch(vec![upd(model.item(1), item(1, "fresh", 9))], at + 1)).await.unwrap();
    model.apply(&[upd(model.item(1), item(1, "fresh", 9))], b9.delta_version);
    assert_only_marks(&path, b9.delta_version);
    assert_eq!(spark_rows(None), model.rows_json());
    assert_eq!(our_feed(&path, feed_from).await, model.feed_from(feed_from));
}

#[tokio::test]
async fn a_mostly_deleted_file_from_before_a_schema_change_is_purged_into_the_current_layout() {
    use crate::tests::{col, pos};
    use tributary_core::{ColumnType, Value};
    let dir = tempfile::tempdir().unwrap();
    let mut w = TableWriter::open_or_create(&dv_cfg(dir.path()), items_schema(true), APP).await.unwrap();
    w.apply(&batch((1..=8).map(|i| ins(item(i, "x", i))).collect(), 100)).await.unwrap();
    let path = w.path().to_path_buf();
    let old_file = active(&path).await.into_keys().next().unwrap();

    // ADD COLUMN note (no default): the old file keeps its layout.
    let mut noted = (*items_schema(true)).clone();
    noted.columns.push(col("note", ColumnType::Text));
    w.change_schema(&noted, &pos(150), &[], &[]).await.unwrap();
    assert!(active(&path).await.contains_key(&old_file), "an added column without a default rewrites nothing");
    let row = |id: i64| vec![Value::Int(id), Value::Text("x".into()), Value::Int(id), Value::Null];
    let deletes: Vec<RowChange> = (1..=4).map(|id| del(row(id))).collect();
    w.apply(&batch(deletes, 200)).await.unwrap();
    assert_eq!(active(&path).await[&old_file], Some(4), "half of the old file marked");

    let options = CompactionOptions::default();
    assert!(w.compaction_due(&options), "a mostly deleted file is due on its own");
    let purged = w.compact(&options).await.unwrap().expect("the old-layout file is compacted, not left out");
    assert_eq!((purged.files_removed, purged.rows), (1, 4));
    let files = active(&path).await;
    assert!(!files.contains_key(&old_file) && files.values().all(Option::is_none), "{files:?}");
    assert!(!w.compaction_due(&options), "nothing left to purge");
    let mut rows: Vec<(i64, J)> =
        read_rows(&path).await.unwrap().iter().map(|r| (r["id"].as_i64().unwrap(), r["note"].clone())).collect();
    rows.sort_by_key(|(id, _)| *id);
    assert_eq!(rows, (5..=8).map(|id| (id, J::Null)).collect::<Vec<_>>());
    // The rewritten file has the current layout: its parquet schema has the column.
    let data =
        crate::files::read_file(&crate::storage::TableFiles::of(&path).unwrap(), files.keys().next().unwrap()).unwrap();
    assert!(data[0].schema().column_with_name("note").is_some());
}

#[tokio::test]
async fn a_new_keyed_table_gets_deletion_vectors_by_default_and_a_keyless_one_never() {
    let dir = tempfile::tempdir().unwrap();
    let config = DeltaSinkConfig::with_root(dir.path());
    let default = TableWriter::open_or_create(&config, items_schema(true), APP).await.unwrap();
    assert!(default.uses_deletion_vectors(), "deletion vectors are the default");

    let dir = tempfile::tempdir().unwrap();
    let keyed = TableWriter::open_or_create(&dv_cfg(dir.path()), items_schema(true), APP).await.unwrap();
    assert!(keyed.uses_deletion_vectors());
    let protocol = &actions(keyed.path(), 0)["protocol"][0];
    assert_eq!((&protocol["minReaderVersion"], &protocol["minWriterVersion"]), (&J::from(3), &J::from(7)));
    assert!(protocol["readerFeatures"].as_array().unwrap().contains(&J::from("deletionVectors")), "{protocol}");
    assert_eq!(actions(keyed.path(), 0)["metaData"][0]["configuration"]["delta.enableDeletionVectors"], "true");

    let other = tempfile::tempdir().unwrap();
    let keyless = TableWriter::open_or_create(&dv_cfg(other.path()), items_schema(false), APP).await.unwrap();
    assert!(!keyless.uses_deletion_vectors(), "a table without a primary key is rewritten");
    assert_eq!(
        actions(keyless.path(), 0)["protocol"][0],
        serde_json::json!({"minReaderVersion": 1, "minWriterVersion": 4})
    );
}

#[tokio::test]
async fn an_existing_table_without_deletion_vectors_is_never_upgraded_silently() {
    let dir = tempfile::tempdir().unwrap();
    let schema = items_schema(true);
    let mut w = TableWriter::open_or_create(&crate::tests::cfg(dir.path()), schema.clone(), APP).await.unwrap();
    assert!(!w.uses_deletion_vectors());
    w.apply(&batch((1..=5).map(|i| ins(item(i, "x", i))).collect(), 100)).await.unwrap();
    drop(w);

    let mut w = TableWriter::open_or_create(&dv_cfg(dir.path()), schema.clone(), APP).await.unwrap();
    assert!(!w.uses_deletion_vectors(), "an existing table keeps being rewritten");
    let rewrite = w.apply(&batch(vec![upd(item(1, "x", 1), item(1, "y", 1))], 101)).await.unwrap();
    assert_eq!(rewrite.files_removed, 1);
    let path = w.path().to_path_buf();
    for v in 0..=w.delta_version() {
        assert!(actions(&path, v).get("protocol").is_none_or(|p| p[0].get("writerFeatures").is_none()));
    }

    // Asked for: one commit, and from then on rows are marked.
    assert!(w.enable_deletion_vectors().await.unwrap());
    assert!(!w.enable_deletion_vectors().await.unwrap(), "once");
    assert!(w.uses_deletion_vectors());
    let marked = w.apply(&batch(vec![upd(item(2, "x", 2), item(2, "y", 2)), del(item(3, "x", 3))], 102)).await.unwrap();
    assert_eq!(marked.files_removed, 0);
    assert_only_marks(&path, marked.delta_version);
    let mut rows: Vec<_> = read_rows(&path).await.unwrap().iter().map(row_of).collect();
    rows.sort();
    assert_eq!(rows, [(1, "y".into(), 1), (2, "y".into(), 2), (4, "x".into(), 4), (5, "x".into(), 5)]);
    // A writer configured for rewrites honours (and keeps writing) the vectors.
    drop(w);
    let w = TableWriter::open_or_create(&crate::tests::cfg(dir.path()), schema, APP).await.unwrap();
    assert!(w.uses_deletion_vectors());
}

#[tokio::test]
async fn another_writer_revectoring_a_file_the_batch_marks_makes_it_replan_and_keeps_both_marks() {
    let dir = tempfile::tempdir().unwrap();
    let schema = items_schema(true);
    let mut w = TableWriter::open_or_create(&dv_cfg(dir.path()), schema.clone(), APP).await.unwrap();
    w.apply(&batch((1..=10).map(|i| ins(item(i, &format!("n{i}"), i))).collect(), 100)).await.unwrap();
    let path = w.path().to_path_buf();
    let file = active(&path).await.into_keys().next().unwrap();

    // Another writer (Spark, say) deletes id 5 (row 4 of the file) with its own vector.
    let mut other = crate::table::open_existing(&path).await.unwrap();
    let layout = crate::schema::TableLayout::new(schema.clone());
    let stored = data_file(&path, &file, &layout);
    let rows = RoaringTreemap::from_iter([4u64]);
    let cdc = delete_cdc(&path, &layout, &stored, &rows);
    let note = CommitNote::new("someone-else", CommitKind::Batch, None, None);
    let theirs =
        commit_deleted_rows(&mut other, &[(file.clone(), rows)], Placement::Inline, note, vec![cdc]).await.unwrap();

    // Our writer planned on the version before theirs: its commit loses, re-plans, keeps both marks.
    let ours = w.apply(&batch(vec![upd(item(6, "n6", 6), item(6, "n6", 60))], 101)).await.unwrap();
    assert_eq!(ours.conflicts, 1);
    assert_eq!(ours.delta_version, theirs + 1);
    assert_eq!(active(&path).await[&file], Some(2), "rows 4 (theirs) and 5 (ours)");
    let mut ids: Vec<(i64, i64)> = read_rows(&path)
        .await
        .unwrap()
        .iter()
        .map(|r| (r["id"].as_i64().unwrap(), r["qty"].as_i64().unwrap()))
        .collect();
    ids.sort();
    let expected: Vec<(i64, i64)> = (1..=10).filter(|&i| i != 5).map(|i| (i, if i == 6 { 60 } else { i })).collect();
    assert_eq!(ids, expected);
    assert_eq!(our_feed(&path, ours.delta_version).await.len(), 2, "one update: pre- and post-image");
}

#[tokio::test]
async fn on_an_s3_root_vector_files_go_to_the_object_store_and_read_back() {
    let Some(s3) =
        tributary_testkit::require("the S3 test server (moto; `make setup`)", tributary_testkit::S3Server::start())
    else {
        return;
    };
    let root = s3.url("dvlake");
    let storage = crate::StorageOptions(s3.sink_storage_options());
    crate::register_root(Path::new(&root), &storage).unwrap();
    let cfg = DeltaSinkConfig { storage, ..dv_cfg(Path::new(&root)) };
    let mut w = TableWriter::open_or_create(&cfg, items_schema(true), APP).await.unwrap();
    assert!(w.uses_deletion_vectors());
    let path = w.path().to_path_buf();
    let mut model = Model::default();
    let inserts: Vec<RowChange> = (1..=300).map(|i| ins(item(i, "n", i))).collect();
    let v = w.apply(&batch(inserts.clone(), 100)).await.unwrap().delta_version;
    model.apply(&inserts, v);
    // 150 marks in one file: its vector (> 256 bytes) goes to a `.bin` object.
    let updates: Vec<RowChange> = (1..=300).step_by(2).map(|i| upd(model.item(i), item(i, "u", i + 1))).collect();
    let stats = w.apply(&batch(updates.clone(), 101)).await.unwrap();
    model.apply(&updates, stats.delta_version);
    assert_eq!(stats.files_removed, 0);
    let files = crate::storage::TableFiles::of(&path).unwrap();
    let crate::storage::TableFiles::Remote { store, .. } = &files else { panic!("an s3:// table is remote") };
    let listed: Vec<String> = {
        use deltalake::logstore::object_store::ObjectStore as _;
        use futures_util::TryStreamExt as _;
        let store = store.clone();
        crate::storage::block_on_io(async move {
            store.list(None).map_ok(|m| m.location.to_string()).try_collect::<Vec<_>>().await.unwrap()
        })
    };
    assert_eq!(listed.iter().filter(|p| p.starts_with("deletion_vector_") && p.ends_with(".bin")).count(), 1);
    // A restart reads the vector back from the store; more marks merge with it.
    drop(w);
    let mut w = TableWriter::open_or_create(&cfg, items_schema(true), APP).await.unwrap();
    let more = vec![del(model.item(2)), upd(model.item(3), item(3, "v", 0))];
    let stats = w.apply(&batch(more.clone(), 102)).await.unwrap();
    model.apply(&more, stats.delta_version);
    assert_eq!(mirror(&path).await, model.rows_json());
    assert_eq!(our_feed(&path, 2).await, model.feed_from(2));
}

#[tokio::test]
async fn a_pre_image_takes_a_complete_before_image_with_the_stored_metadata_and_reads_the_stored_row_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = TableWriter::open_or_create(&dv_cfg(dir.path()), items_schema(true), APP).await.unwrap();
    let path = w.path().to_path_buf();
    let inserted = w.apply(&batch((1..=4).map(|i| ins(item(i, "stored", i))).collect(), 100)).await.unwrap();
    let stored_version = crate::tests::batch(vec![], 100).position.to_version().unwrap();
    // A complete before image (as MySQL / REPLICA IDENTITY FULL send it),
    // deliberately unlike the stored row so the test sees where the
    // pre-image came from; and a key-only one (PostgreSQL's default
    // identity), which must take the stored row.
    let key_only = |id: i64| {
        vec![tributary_core::Value::Int(id), tributary_core::Value::Unchanged, tributary_core::Value::Unchanged]
    };
    let changed = w
        .apply(&batch(
            vec![
                upd(item(1, "source image", 10), item(1, "after", 11)),
                del(item(2, "source image", 20)),
                upd(key_only(3), item(3, "after", 33)),
                del(key_only(4)),
            ],
            101,
        ))
        .await
        .unwrap();
    assert_eq!(changed.files_removed, 0, "rows marked, nothing rewritten");
    assert!(changed.delta_version > inserted.delta_version);
    let feed = read_changes(&path, changed.delta_version, Some(changed.delta_version)).await.unwrap();
    let old_images: BTreeMap<i64, (String, String, i64, i64)> = feed
        .iter()
        .filter(|c| c.change_type != "update_postimage")
        .map(|c| {
            let v = &c.values;
            (
                v["id"].as_i64().unwrap(),
                (
                    c.change_type.clone(),
                    v["name"].as_str().unwrap().to_string(),
                    v["qty"].as_i64().unwrap(),
                    v["_tributary_source_version"].as_i64().unwrap(),
                ),
            )
        })
        .collect();
    let expected: BTreeMap<i64, (String, String, i64, i64)> = [
        (1, ("update_preimage".to_string(), "source image".to_string(), 10, stored_version)),
        (2, ("delete".to_string(), "source image".to_string(), 20, stored_version)),
        (3, ("update_preimage".to_string(), "stored".to_string(), 3, stored_version)),
        (4, ("delete".to_string(), "stored".to_string(), 4, stored_version)),
    ]
    .into();
    assert_eq!(old_images, expected, "source columns from a complete image, metadata always stored");
    let mut rows: Vec<_> = read_rows(&path).await.unwrap().iter().map(row_of).collect();
    rows.sort();
    assert_eq!(rows, [(1, "after".into(), 11), (3, "after".into(), 33)]);
}

#[tokio::test]
async fn keys_are_found_in_snapshot_files_not_in_key_order() {
    // A chunked snapshot's connections copy key ranges into one file in
    // arrival order: the first file holds three sorted runs, the second 100
    // descending keys; neither is in key order, so each value is probed.
    let dir = tempfile::tempdir().unwrap();
    let config = DeltaSinkConfig { target_file_rows: 100, ..dv_cfg(dir.path()) };
    let mut w = TableWriter::open_or_create(&config, items_schema(true), APP).await.unwrap();
    let path = w.path().to_path_buf();
    let at = crate::tests::pos(100);
    let runs: Vec<i64> = (500..540).chain(0..30).chain(300..330).collect();
    let rows = |ids: &[i64]| ids.iter().map(|&i| item(i, "copied", i)).collect::<Vec<_>>();
    w.append_snapshot_chunk(rows(&runs), &at, 5, false).await.unwrap();
    let descending: Vec<i64> = (1000..1100).rev().collect();
    w.append_snapshot_chunk(rows(&descending), &at, 5, true).await.unwrap();
    assert_eq!(active(&path).await.len(), 2, "one file per chunk");
    let mut model = Model::default();
    for &id in runs.iter().chain(&descending) {
        model.rows.insert(id, ("copied".into(), id));
    }
    // Keys at each run's edges and inside it, keys between runs (absent),
    // and keys of the descending file.
    let mut changes = Vec::new();
    for id in [500, 539, 0, 5, 29, 300, 329, 1000, 1050, 1099] {
        changes.push(upd(model.item(id), item(id, "updated", id + 1)));
    }
    for id in [520, 3, 310, 1001] {
        changes.push(del(model.item(id)));
    }
    changes.push(ins(item(100, "new", 100))); // between two runs' ranges
    let applied = w.apply(&batch(changes.clone(), 200)).await.unwrap();
    model.apply(&changes, applied.delta_version);
    assert_eq!(applied.files_removed, 0, "rows marked, nothing rewritten");
    assert_only_marks(&path, applied.delta_version);
    assert_eq!(mirror(&path).await, model.rows_json());
    assert_eq!(our_feed(&path, applied.delta_version).await, model.feed_from(applied.delta_version));
}

#[tokio::test]
async fn a_mostly_deleted_file_is_purged_into_files_of_the_target_size_without_its_deleted_rows() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = TableWriter::open_or_create(&dv_cfg(dir.path()), items_schema(true), APP).await.unwrap();
    w.apply(&batch((1..=3000).map(|i| ins(item(i, "x", i))).collect(), 100)).await.unwrap();
    let path = w.path().to_path_buf();
    let files = active(&path).await;
    let (old_file, size) = {
        let (name, _) = files.iter().next().unwrap();
        (name.clone(), std::fs::metadata(path.join(name)).unwrap().len())
    };
    assert_eq!(files.len(), 1);
    // Every third row deleted: a third of the file is marked.
    let gone: Vec<RowChange> = (1..=3000).filter(|i| i % 3 == 0).map(|i| del(item(i, "x", i))).collect();
    w.apply(&batch(gone, 200)).await.unwrap();
    assert_eq!(active(&path).await[&old_file], Some(1000));

    // A target of a quarter of the file: the 2,000 live rows go to several files.
    let options = CompactionOptions { target_file_bytes: size / 4, min_small_files: 100, max_bytes_per_run: 1 << 30 };
    let purged = w.compact(&options).await.unwrap().expect("the mostly deleted file is purged");
    assert_eq!((purged.files_removed, purged.rows), (1, 2000));
    assert!(purged.files_added >= 2, "{purged:?}");
    let files = active(&path).await;
    assert!(!files.contains_key(&old_file) && files.values().all(Option::is_none), "{files:?}");
    let expected: Vec<(i64, String, i64)> =
        (1..=3000).filter(|i| i % 3 != 0).map(|i| (i, "x".to_string(), i)).collect();
    assert_eq!(mirror(&path).await, expected);
    assert!(read_changes(&path, purged.delta_version, Some(purged.delta_version)).await.unwrap().is_empty());
}
