//! Behaviour of the sink against real Delta tables in temporary directories.

use crate::schema::{OP_COLUMN, POSITION_COLUMN, SOURCE_VERSION_COLUMN};
use crate::{
    read_changes, read_rows, table_status, ChangeRecord, DeltaError, DeltaSinkConfig, SourcedChange, TableBatch,
    TableWriter,
};
use serde_json::{json, Map, Value as J};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use tributary_core::{
    Column, ColumnType, Gtid, MySqlPosition, Retryable, RowChange, SourcePosition, TableId, TableSchema, Value,
};

pub(crate) const APP: &str = "tributary-test";

pub(crate) fn pos(offset: u64) -> SourcePosition {
    SourcePosition::MySql(MySqlPosition::new("mysql-bin.000001", offset))
}

pub(crate) fn col(name: &str, ty: ColumnType) -> Column {
    Column { name: name.into(), data_type: ty, nullable: true, source_type: String::new(), source_id: None }
}

/// `id bigint primary key, name text, qty int`.
pub(crate) fn items_schema(pk: bool) -> Arc<TableSchema> {
    Arc::new(TableSchema {
        id: TableId::new("shop", if pk { "items" } else { "events" }),
        columns: vec![
            Column { nullable: false, ..col("id", ColumnType::Int64) },
            col("name", ColumnType::Text),
            col("qty", ColumnType::Int32),
        ],
        primary_key: if pk { vec![0] } else { vec![] },
    })
}

pub(crate) fn item(id: i64, name: &str, qty: i64) -> Vec<Value> {
    vec![Value::Int(id), Value::Text(name.into()), Value::Int(qty)]
}

pub(crate) fn ins(row: Vec<Value>) -> RowChange {
    RowChange::Insert { after: row }
}

pub(crate) fn upd(before: Vec<Value>, after: Vec<Value>) -> RowChange {
    RowChange::Update { before, after }
}

pub(crate) fn del(row: Vec<Value>) -> RowChange {
    RowChange::Delete { before: row }
}

pub(crate) fn batch(changes: Vec<RowChange>, at: u64) -> TableBatch {
    TableBatch {
        changes: changes
            .into_iter()
            .enumerate()
            .map(|(seq, change)| SourcedChange {
                change,
                position: pos(at),
                commit_ts: 1_700_000_000_000_000,
                change_seq: seq as i64,
            })
            .collect(),
        position: pos(at),
    }
}

/// The copy-on-write path (`update_mode = "rewrite"`): the tests of this file
/// assert which files an update rewrites; the default, deletion vectors, is
/// covered by `deletion_vector_writer_tests.rs`.
pub(crate) fn cfg(dir: &Path) -> DeltaSinkConfig {
    DeltaSinkConfig { update_mode: Some(crate::UpdateMode::Rewrite), ..DeltaSinkConfig::with_root(dir) }
}

pub(crate) async fn open(dir: &Path, schema: &Arc<TableSchema>) -> TableWriter {
    TableWriter::open_or_create(&cfg(dir), schema.clone(), APP).await.unwrap()
}

/// The actions of one commit, by kind (`add`, `remove`, `cdc`, `txn`, `commitInfo`, ...).
pub(crate) fn actions(table: &Path, version: i64) -> BTreeMap<String, Vec<J>> {
    let text = std::fs::read_to_string(table.join(format!("_delta_log/{version:020}.json"))).unwrap();
    let mut out: BTreeMap<String, Vec<J>> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: J = serde_json::from_str(line).unwrap();
        let (kind, body) = v.as_object().unwrap().iter().next().unwrap();
        out.entry(kind.clone()).or_default().push(body.clone());
    }
    out
}

fn count(actions: &BTreeMap<String, Vec<J>>, kind: &str) -> usize {
    actions.get(kind).map_or(0, Vec::len)
}

/// Rows by `id`, source columns only.
async fn rows_by_id(table: &Path) -> BTreeMap<i64, Map<String, J>> {
    read_rows(table)
        .await
        .unwrap()
        .into_iter()
        .map(|mut r| {
            r.retain(|k, _| !k.starts_with("_tributary"));
            (r["id"].as_i64().unwrap(), r)
        })
        .collect()
}

fn brief(records: &[ChangeRecord]) -> Vec<(String, i64, J)> {
    records
        .iter()
        .map(|r| (r.change_type.clone(), r.values["id"].as_i64().unwrap(), r.values["name"].clone()))
        .collect()
}

fn change(kind: &str, id: i64, name: &str) -> (String, i64, J) {
    (kind.to_string(), id, json!(name))
}

#[tokio::test]
async fn new_table_has_cdf_protocol_1_4_and_tributary_properties() {
    let dir = tempfile::tempdir().unwrap();
    let w = open(dir.path(), &items_schema(true)).await;
    assert_eq!(w.path(), dir.path().join("shop/items"));
    assert_eq!(w.delta_version(), 0);
    assert_eq!(w.committed_version(), None);
    assert!(!w.snapshot_complete());
    let a = actions(w.path(), 0);
    assert_eq!(a["protocol"][0], json!({"minReaderVersion": 1, "minWriterVersion": 4}));
    let conf = &a["metaData"][0]["configuration"];
    assert_eq!(conf["delta.enableChangeDataFeed"], "true");
    assert_eq!(conf["tributary.source.table"], "shop.items");
    assert_eq!(conf["tributary.primaryKey"], r#"["id"]"#);
    assert_eq!(conf.get("delta.enableDeletionVectors"), None, "update_mode = \"rewrite\"");
    let schema: J = serde_json::from_str(a["metaData"][0]["schemaString"].as_str().unwrap()).unwrap();
    let names: Vec<&str> = schema["fields"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "id",
            "name",
            "qty",
            OP_COLUMN,
            POSITION_COLUMN,
            SOURCE_VERSION_COLUMN,
            "_tributary_commit_ts",
            "_tributary_change_seq"
        ]
    );
}

#[tokio::test]
async fn insert_only_commit_appends_one_file_and_rewrites_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = open(dir.path(), &items_schema(true)).await;
    let stats =
        w.apply(&batch(vec![ins(item(1, "a", 1)), ins(item(2, "b", 2)), ins(item(3, "c", 3))], 100)).await.unwrap();
    assert_eq!((stats.delta_version, stats.rows_written, stats.files_added, stats.files_removed), (1, 3, 1, 0));
    let a = actions(w.path(), 1);
    assert_eq!((count(&a, "add"), count(&a, "remove"), count(&a, "cdc")), (1, 0, 0));
    assert_eq!(a["txn"][0]["appId"], APP);
    assert_eq!(a["txn"][0]["version"], pos(100).to_version().unwrap());
    let add_stats: J = serde_json::from_str(a["add"][0]["stats"].as_str().unwrap()).unwrap();
    assert_eq!(add_stats["numRecords"], 3);
    assert_eq!((add_stats["minValues"]["id"].clone(), add_stats["maxValues"]["id"].clone()), (json!(1), json!(3)));
    assert_eq!(a["commitInfo"][0]["tributary"]["position"], serde_json::from_str::<J>(&pos(100).to_json()).unwrap());

    let rows = read_rows(w.path()).await.unwrap();
    assert_eq!(rows.len(), 3);
    let one = rows.iter().find(|r| r["id"] == 1).unwrap();
    assert_eq!(one[OP_COLUMN], "c");
    assert_eq!(one[POSITION_COLUMN], "mysql-bin.000001:100");
    assert_eq!(one[SOURCE_VERSION_COLUMN], pos(100).to_version().unwrap());
    assert_eq!(one["_tributary_commit_ts"], "2023-11-14T22:13:20.000000Z");
    let feed = read_changes(w.path(), 1, None).await.unwrap();
    assert_eq!(brief(&feed), [change("insert", 1, "a"), change("insert", 2, "b"), change("insert", 3, "c")]);
}

/// Three files: ids 1..=10, 11..=20, 21..=30.
async fn three_files(dir: &Path) -> TableWriter {
    let mut w = open(dir, &items_schema(true)).await;
    for f in 0..3 {
        let rows = (1..=10).map(|i| ins(item(f * 10 + i, &format!("n{}", f * 10 + i), 0))).collect();
        w.apply(&batch(rows, 100 + f as u64)).await.unwrap();
    }
    assert_eq!(w.file_count(), 3);
    w
}

fn active_files(table: &Path, upto: i64) -> Vec<String> {
    let mut files = std::collections::BTreeSet::new();
    for v in 0..=upto {
        let a = actions(table, v);
        for add in a.get("add").into_iter().flatten() {
            files.insert(add["path"].as_str().unwrap().to_string());
        }
        for rm in a.get("remove").into_iter().flatten() {
            files.remove(rm["path"].as_str().unwrap());
        }
    }
    files.into_iter().collect()
}

#[tokio::test]
async fn update_rewrites_only_the_file_whose_stats_hold_the_key_and_cdf_has_exactly_its_images() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = three_files(dir.path()).await;
    let before = active_files(w.path(), 3);
    let stats = w.apply(&batch(vec![upd(item(15, "n15", 0), item(15, "fifteen", 5))], 200)).await.unwrap();
    assert_eq!((stats.files_added, stats.files_removed, stats.rows_written, stats.rows_copied), (1, 1, 1, 9));
    let a = actions(w.path(), 4);
    assert_eq!((count(&a, "add"), count(&a, "remove"), count(&a, "cdc")), (1, 1, 1));
    let after = active_files(w.path(), 4);
    let kept: Vec<_> = before.iter().filter(|f| after.contains(f)).collect();
    assert_eq!(kept.len(), 2, "the two files without key 15 stay");
    let removed = a["remove"][0]["path"].as_str().unwrap();
    assert!(before.iter().any(|f| f == removed));

    let feed = read_changes(w.path(), 4, Some(4)).await.unwrap();
    assert_eq!(brief(&feed), [change("update_preimage", 15, "n15"), change("update_postimage", 15, "fifteen")]);
    assert_eq!(feed[0].values[OP_COLUMN], "c");
    assert_eq!(feed[1].values[OP_COLUMN], "u");
    assert_eq!(feed[1].values["qty"], 5);
    let rows = rows_by_id(w.path()).await;
    assert_eq!(rows.len(), 30);
    assert_eq!(rows[&15]["name"], "fifteen");
    assert_eq!(rows[&14]["name"], "n14");
}

#[tokio::test]
async fn delete_removes_the_row_and_records_its_stored_image() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = three_files(dir.path()).await;
    // The source's before-image may be partial; the feed shows the stored row.
    let stats = w.apply(&batch(vec![del(vec![Value::Int(25), Value::Null, Value::Null])], 200)).await.unwrap();
    assert_eq!((stats.rows_deleted, stats.files_removed), (1, 1));
    let feed = read_changes(w.path(), 4, None).await.unwrap();
    assert_eq!(brief(&feed), [change("delete", 25, "n25")]);
    let rows = rows_by_id(w.path()).await;
    assert_eq!(rows.len(), 29);
    assert!(!rows.contains_key(&25));
    // Deleting a whole file's rows removes it without an empty replacement.
    let all: Vec<_> = (21..=30).filter(|i| *i != 25).map(|i| del(item(i, "", 0))).collect();
    let stats = w.apply(&batch(all, 201)).await.unwrap();
    assert_eq!((stats.files_added, stats.files_removed), (0, 1));
    assert_eq!(w.file_count(), 2);
}

#[tokio::test]
async fn a_batch_touching_one_key_many_times_keeps_per_key_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = three_files(dir.path()).await;
    let changes = vec![
        ins(item(100, "v1", 1)),
        upd(item(100, "v1", 1), item(100, "v2", 2)),
        del(item(100, "v2", 2)),
        ins(item(100, "v3", 3)),
        upd(item(100, "v3", 3), item(100, "v4", 4)),
        upd(item(7, "n7", 0), item(7, "x", 1)),
        del(item(7, "x", 1)),
        ins(item(7, "again", 2)),
        ins(item(101, "new", 0)),
    ];
    w.apply(&batch(changes, 200)).await.unwrap();
    let feed = read_changes(w.path(), 4, None).await.unwrap();
    assert_eq!(
        brief(&feed),
        [
            change("insert", 100, "v1"),
            change("update_preimage", 100, "v1"),
            change("update_postimage", 100, "v2"),
            change("delete", 100, "v2"),
            change("insert", 100, "v3"),
            change("update_preimage", 100, "v3"),
            change("update_postimage", 100, "v4"),
            change("update_preimage", 7, "n7"),
            change("update_postimage", 7, "x"),
            change("delete", 7, "x"),
            change("insert", 7, "again"),
            change("insert", 101, "new"),
        ]
    );
    // Every image written by a change carries the change's index in its
    // source transaction, so readers can order changes that share a version.
    let post_seqs: Vec<(i64, J)> = feed
        .iter()
        .filter(|r| r.change_type != "update_preimage" && r.change_type != "delete")
        .map(|r| (r.values["_tributary_change_seq"].as_i64().unwrap(), r.values["name"].clone()))
        .collect();
    assert_eq!(
        post_seqs,
        [
            (0, json!("v1")),
            (1, json!("v2")),
            (3, json!("v3")),
            (4, json!("v4")),
            (5, json!("x")),
            (7, json!("again")),
            (8, json!("new"))
        ]
    );
    let rows = rows_by_id(w.path()).await;
    assert_eq!(rows.len(), 32);
    assert_eq!(rows[&100]["name"], "v4");
    assert_eq!(rows[&100]["qty"], 4);
    assert_eq!(rows[&7]["name"], "again");
    // Untouched files stay; only the file of key 7 was rewritten.
    assert_eq!(count(&actions(w.path(), 4), "remove"), 1);
}

#[tokio::test]
async fn a_batch_touching_many_files_rewrites_each_touched_file_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = three_files(dir.path()).await;
    let changes = vec![
        upd(item(2, "n2", 0), item(2, "two", 2)),
        del(item(13, "", 0)),
        upd(item(27, "n27", 0), item(27, "x", 1)),
        upd(item(27, "x", 1), item(27, "y", 2)),
        del(item(21, "", 0)),
    ];
    let stats = w.apply(&batch(changes, 200)).await.unwrap();
    assert_eq!((stats.files_removed, stats.files_added, stats.rows_copied, stats.rows_written), (3, 3, 26, 2));
    let rows = rows_by_id(w.path()).await;
    assert_eq!(rows.len(), 28);
    assert_eq!((rows[&2]["name"].clone(), rows[&27]["name"].clone()), (json!("two"), json!("y")));
    assert!(!rows.contains_key(&13) && !rows.contains_key(&21));
    let feed = read_changes(w.path(), 4, None).await.unwrap();
    assert_eq!(
        brief(&feed),
        [
            change("update_preimage", 2, "n2"),
            change("update_postimage", 2, "two"),
            change("delete", 13, "n13"),
            change("update_preimage", 27, "n27"),
            change("update_postimage", 27, "x"),
            change("update_preimage", 27, "x"),
            change("update_postimage", 27, "y"),
            change("delete", 21, "n21"),
        ]
    );
}

#[tokio::test]
async fn a_table_written_before_the_change_sequence_column_gains_it_and_keeps_its_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shop/items");
    std::fs::create_dir_all(&path).unwrap();
    // The table as an older Tributary created it: every column but the last metadata one.
    let layout = crate::schema::TableLayout::new(items_schema(true));
    let mut fields = layout.delta_fields();
    assert_eq!(fields.pop().unwrap().name(), "_tributary_change_seq");
    let url = deltalake::ensure_table_uri(path.to_str().unwrap()).unwrap();
    let older = deltalake::DeltaTableBuilder::from_url(url).unwrap().build().unwrap();
    deltalake::operations::create::CreateBuilder::new()
        .with_log_store(older.log_store())
        .with_columns(fields)
        .with_configuration_property(deltalake::TableProperty::EnableChangeDataFeed, Some("true"))
        .with_configuration(layout.tributary_properties().into_iter().map(|(k, v)| (k, Some(v))))
        .with_raise_if_key_not_exists(false)
        .await
        .unwrap();
    let mut w = open(dir.path(), &items_schema(true)).await;
    // Two metadata-only commits: the owner is recorded, the column added.
    assert_eq!(w.delta_version(), 2);
    assert_eq!(count(&actions(w.path(), 2), "metaData"), 1);
    assert!(!w.snapshot_complete(), "the upgrade says nothing about the copy");
    w.apply(&batch(vec![ins(item(1, "a", 1)), upd(item(1, "a", 1), item(1, "b", 2))], 100)).await.unwrap();
    let rows = read_rows(w.path()).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["_tributary_change_seq"], 1);
    // Opening it again commits nothing more.
    let again = open(dir.path(), &items_schema(true)).await;
    assert_eq!(again.delta_version(), 3);
}

#[tokio::test]
async fn primary_key_updates_move_the_row() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = three_files(dir.path()).await;
    w.apply(&batch(vec![upd(item(3, "n3", 0), item(300, "moved", 0))], 200)).await.unwrap();
    let rows = rows_by_id(w.path()).await;
    assert!(!rows.contains_key(&3));
    assert_eq!(rows[&300]["name"], "moved");
    assert_eq!(rows.len(), 30);
    let feed = read_changes(w.path(), 4, None).await.unwrap();
    assert_eq!(brief(&feed), [change("update_preimage", 3, "n3"), change("update_postimage", 300, "moved")]);
}

#[tokio::test]
async fn txn_version_and_full_position_read_back_after_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let schema = items_schema(true);
    let mut p = MySqlPosition::new("mysql-bin.000003", 4567);
    p.gtid = Some(Gtid::MariaDb { domain: 0, server_id: 1, sequence: 42 });
    let position = SourcePosition::MySql(p);
    {
        let mut w = open(dir.path(), &schema).await;
        let mut b = batch(vec![ins(item(1, "a", 1))], 1);
        b.changes[0].position = position.clone();
        b.position = position.clone();
        w.apply(&b).await.unwrap();
        assert_eq!(w.committed_position(), Some(position.clone()));
    }
    let w = open(dir.path(), &schema).await;
    assert_eq!(w.committed_version(), Some(position.to_version().unwrap()));
    assert_eq!(w.committed_position(), Some(position.clone()));
    assert!(w.snapshot_complete());
    assert_eq!(w.delta_version(), 1);
    let status = table_status(w.path(), APP).await.unwrap();
    assert_eq!(status.committed_version, Some(position.to_version().unwrap()));
    assert_eq!(status.committed_position, Some(position));
    assert_eq!((status.version, status.files, status.rows), (1, 1, Some(1)));
    assert!(status.last_commit_ts_ms.is_some());
    let other = table_status(w.path(), "another-app").await.unwrap();
    assert_eq!(other.committed_version, None);
}

#[tokio::test]
async fn positions_at_or_below_the_committed_one_are_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = open(dir.path(), &items_schema(true)).await;
    w.apply(&batch(vec![ins(item(1, "a", 1))], 100)).await.unwrap();
    for at in [100, 50] {
        let err = w.apply(&batch(vec![ins(item(2, "b", 1))], at)).await.unwrap_err();
        match &err {
            DeltaError::PositionBackwards { stored, offered, .. } => {
                assert_eq!(*stored, pos(100).to_version().unwrap());
                assert_eq!(*offered, pos(at).to_version().unwrap());
            }
            other => panic!("unexpected {other}"),
        }
        assert_eq!(err.class(), tributary_core::ErrorClass::NeedsOperator);
    }
    assert_eq!(w.delta_version(), 1);
    assert_eq!(rows_by_id(w.path()).await.len(), 1);
    // Position-only commits move the position without data.
    let stats = w.apply(&batch(vec![], 300)).await.unwrap();
    assert_eq!((stats.delta_version, stats.files_added), (2, 0));
    assert_eq!(w.committed_version(), Some(pos(300).to_version().unwrap()));
}

#[tokio::test]
async fn snapshot_chunks_commit_full_files_and_only_the_last_stores_the_position() {
    let dir = tempfile::tempdir().unwrap();
    let schema = items_schema(true);
    let config = DeltaSinkConfig { target_file_rows: 4, ..cfg(dir.path()) };
    let at = pos(777);
    let mut w = TableWriter::open_or_create(&config, schema.clone(), APP).await.unwrap();
    let rows = |r: std::ops::Range<i64>| r.map(|i| item(i, "s", i)).collect::<Vec<_>>();
    let s = w.append_snapshot_chunk(rows(0..3), &at, 5, false).await.unwrap();
    assert_eq!(s.commits, 0, "3 rows stay buffered");
    let s = w.append_snapshot_chunk(rows(3..10), &at, 5, false).await.unwrap();
    assert_eq!((s.commits, s.rows_written), (2, 8));
    assert!(!w.snapshot_complete());
    assert_eq!(w.committed_version(), None);
    drop(w);

    // A crash here leaves files but no position: detectable, and reset empties the table.
    let mut w = TableWriter::open_or_create(&config, schema.clone(), APP).await.unwrap();
    assert!(!w.snapshot_complete());
    assert_eq!(w.committed_version(), None);
    assert!(w.delta_version() > 0);
    assert_eq!(w.file_count(), 2);
    w.reset().await.unwrap();
    assert_eq!(w.file_count(), 0);
    assert!(read_rows(w.path()).await.unwrap().is_empty());

    w.append_snapshot_chunk(rows(0..6), &at, 5, false).await.unwrap();
    let s = w.append_snapshot_chunk(rows(6..10), &at, 5, true).await.unwrap();
    assert_eq!((s.rows_written, s.commits), (6, 2), "the second file fills up; the rest goes with the position");
    assert!(w.snapshot_complete());
    assert_eq!(w.committed_version(), Some(at.to_version().unwrap()));
    let last = actions(w.path(), w.delta_version());
    assert_eq!((count(&last, "add"), count(&last, "txn")), (1, 1));
    let all = read_rows(w.path()).await.unwrap();
    assert_eq!(all.len(), 10);
    assert!(all.iter().all(|r| r[OP_COLUMN] == "r" && r[POSITION_COLUMN] == "mysql-bin.000001:777"));
    assert_eq!(w.file_count(), 3);
    // A finished snapshot refuses more snapshot rows.
    let err = w.append_snapshot_chunk(rows(0..1), &at, 5, false).await.unwrap_err();
    assert!(matches!(err, DeltaError::State { .. }), "{err}");
    // Streaming continues after the snapshot position.
    w.apply(&batch(vec![upd(item(2, "s", 2), item(2, "changed", 2))], 800)).await.unwrap();
    assert_eq!(rows_by_id(w.path()).await[&2]["name"], "changed");
    let reopened = TableWriter::open_or_create(&config, schema, APP).await.unwrap();
    assert!(reopened.snapshot_complete());
}

#[tokio::test]
async fn a_chunked_copy_resumes_from_its_recorded_cursor_and_catch_up_inserts_replace_copied_rows() {
    let dir = tempfile::tempdir().unwrap();
    let schema = items_schema(true);
    let config = DeltaSinkConfig { target_file_rows: 4, ..cfg(dir.path()) };
    let start = pos(500);
    let rows = |r: std::ops::Range<i64>| r.map(|i| item(i, "copied", i)).collect::<Vec<_>>();
    let progress = |last: i64| crate::SnapshotProgress { start: start.clone(), cursor: json!({ "after": last }) };
    let mut w = TableWriter::open_or_create(&config, schema.clone(), APP).await.unwrap();
    assert!(w.snapshot_progress().is_none());
    let s = w.append_snapshot_rows(rows(0..3), 5, &progress(2)).await.unwrap();
    assert_eq!(s.commits, 0, "3 rows stay buffered");
    // A chunk fills the file past its target: committed whole, with the cursor after it.
    let s = w.append_snapshot_rows(rows(3..6), 5, &progress(5)).await.unwrap();
    assert_eq!((s.commits, s.rows_written), (1, 6));
    let s = w.append_snapshot_rows(rows(6..8), 5, &progress(7)).await.unwrap();
    assert_eq!(s.commits, 0);
    drop(w); // a crash: rows 6 and 7 were never committed

    let mut w = TableWriter::open_or_create(&config, schema.clone(), APP).await.unwrap();
    let resumed = w.snapshot_progress().cloned().expect("the copy is resumable");
    assert_eq!(resumed, progress(5), "the cursor of the rows committed, not of the rows read");
    assert_eq!(w.committed_version(), None);
    w.append_snapshot_rows(rows(6..10), 5, &progress(9)).await.unwrap();
    let until = pos(900);
    w.finish_chunked_snapshot(5, &progress(9), &until).await.unwrap();
    assert!(w.snapshot_complete());
    assert_eq!(w.committed_version(), Some(start.to_version().unwrap()));
    assert_eq!(read_rows(w.path()).await.unwrap().len(), 10);
    drop(w);

    // Streaming replays from the start: an insert the copy already read
    // replaces the row until the catch-up bound (also after a restart) ...
    let mut w = TableWriter::open_or_create(&config, schema.clone(), APP).await.unwrap();
    assert!(w.snapshot_progress().is_none());
    w.apply(&batch(vec![ins(item(3, "streamed", 3)), del(item(42, "never copied", 0))], 600)).await.unwrap();
    drop(w);
    let mut w = TableWriter::open_or_create(&config, schema.clone(), APP).await.unwrap();
    assert_eq!(w.catching_up_until(), Some(&until));
    w.apply(&batch(vec![ins(item(4, "streamed", 4)), ins(item(11, "new", 11))], 900)).await.unwrap();
    let by_id = rows_by_id(w.path()).await;
    assert_eq!(by_id.len(), 11);
    assert_eq!((by_id[&3]["name"].clone(), by_id[&4]["name"].clone()), (json!("streamed"), json!("streamed")));
    let all = read_rows(w.path()).await.unwrap();
    assert_eq!(all.len(), 11, "no key twice");
    // ... and after it, inserts are trusted again (no lookup: the commit reads nothing).
    let s = w.apply(&batch(vec![ins(item(12, "new", 12))], 901)).await.unwrap();
    assert_eq!(s.files_removed, 0);
    drop(w);
    let reopened = TableWriter::open_or_create(&config, schema, APP).await.unwrap();
    assert!(reopened.catching_up_until().is_none());
}

#[tokio::test]
async fn a_recopy_removes_the_rows_records_its_start_resumes_and_hands_over_at_its_start() {
    let dir = tempfile::tempdir().unwrap();
    let schema = items_schema(true);
    let config = DeltaSinkConfig { target_file_rows: 4, ..cfg(dir.path()) };
    let mut w = TableWriter::open_or_create(&config, schema.clone(), APP).await.unwrap();
    w.append_snapshot_chunk((0..6).map(|i| item(i, "old", i)).collect(), &pos(100), 5, true).await.unwrap();
    w.apply(&batch(vec![upd(item(2, "old", 2), item(2, "streamed", 2))], 300)).await.unwrap();
    assert!(!w.recopy_in_progress());

    // A start before the committed position is refused; then the rows go in one commit.
    let start = pos(400);
    let progress = |last: i64| crate::SnapshotProgress { start: start.clone(), cursor: json!({ "after": last }) };
    let behind = crate::SnapshotProgress { start: pos(200), cursor: json!({}) };
    assert!(matches!(w.begin_recopy(&behind).await.unwrap_err(), DeltaError::PositionBackwards { .. }));
    let removed = w.begin_recopy(&progress(-1)).await.unwrap();
    assert_eq!((removed.rows_deleted, removed.commits), (6, 1));
    assert!(w.recopy_in_progress() && !w.snapshot_complete());
    assert_eq!(read_rows(w.path()).await.unwrap().len(), 0);
    let feed = read_changes(w.path(), w.delta_version(), None).await.unwrap();
    assert!(feed.len() == 6 && feed.iter().all(|r| r.change_type == "delete"), "the feed deletes every old row");
    // Streamed changes are refused while the copy runs.
    assert!(w.apply(&batch(vec![ins(item(50, "x", 50))], 450)).await.is_err());
    w.append_snapshot_rows((0..5).map(|i| item(i, "copied", i)).collect(), 5, &progress(4)).await.unwrap();
    w.append_snapshot_rows(vec![item(5, "copied", 5)], 5, &progress(5)).await.unwrap();
    drop(w); // a crash: row 5 was never committed

    let mut w = TableWriter::open_or_create(&config, schema.clone(), APP).await.unwrap();
    assert!(w.recopy_in_progress(), "the re-copy survives a restart");
    assert_eq!(w.snapshot_progress(), Some(&progress(4)));
    assert_eq!(w.committed_version(), Some(pos(300).to_version().unwrap()), "the old position until it ends");
    w.append_snapshot_rows(vec![item(5, "copied", 5)], 5, &progress(5)).await.unwrap();
    w.finish_chunked_snapshot(5, &progress(5), &pos(600)).await.unwrap();
    assert!(!w.recopy_in_progress() && w.snapshot_complete());
    assert_eq!(w.committed_position(), Some(start.clone()), "streaming continues from the copy's start");
    assert_eq!(w.catching_up_until(), Some(&pos(600)));
    // The stream replays from the start: an insert of a copied row replaces it.
    w.apply(&batch(vec![ins(item(3, "replayed", 3))], 500)).await.unwrap();
    let by_id = rows_by_id(w.path()).await;
    assert_eq!(by_id.len(), 6, "no key twice");
    assert_eq!(by_id[&3]["name"], json!("replayed"));
}

#[tokio::test]
async fn truncate_removes_every_file_and_the_feed_deletes_every_row() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = three_files(dir.path()).await;
    let stats = w
        .apply(&batch(
            vec![upd(item(1, "n1", 0), item(1, "x", 0)), RowChange::Truncate, ins(item(99, "after", 0))],
            200,
        ))
        .await
        .unwrap();
    assert_eq!((stats.files_removed, stats.rows_deleted), (3, 30));
    let rows = rows_by_id(w.path()).await;
    assert_eq!(rows.keys().copied().collect::<Vec<_>>(), [99]);
    let feed = read_changes(w.path(), 4, None).await.unwrap();
    assert_eq!(feed.len(), 2 + 30 + 1);
    assert_eq!(brief(&feed[..2]), [change("update_preimage", 1, "n1"), change("update_postimage", 1, "x")]);
    assert!(feed[2..32].iter().all(|r| r.change_type == "delete"));
    assert!(feed[2..32].iter().any(|r| r.values["id"] == 1 && r.values["name"] == "x"));
    assert_eq!(brief(&feed[32..]), [change("insert", 99, "after")]);
}

#[tokio::test]
async fn tables_without_primary_key_are_append_only_changelogs() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = open(dir.path(), &items_schema(false)).await;
    assert_eq!(actions(w.path(), 0)["metaData"][0]["configuration"]["tributary.mode"], "changelog");
    w.apply(&batch(vec![ins(item(1, "a", 1)), ins(item(1, "a", 1))], 100)).await.unwrap();
    w.apply(&batch(vec![upd(item(1, "a", 1), item(1, "b", 2)), del(item(1, "b", 2))], 200)).await.unwrap();
    for v in 1..=2 {
        let a = actions(w.path(), v);
        assert_eq!((count(&a, "add"), count(&a, "remove"), count(&a, "cdc")), (1, 0, 0));
    }
    let mut rows = read_rows(w.path()).await.unwrap();
    rows.sort_by_key(|r| (r[SOURCE_VERSION_COLUMN].as_i64(), r[OP_COLUMN].as_str().map(str::to_string)));
    let ops: Vec<(&str, &str)> =
        rows.iter().map(|r| (r[OP_COLUMN].as_str().unwrap(), r["name"].as_str().unwrap())).collect();
    assert_eq!(ops, [("c", "a"), ("c", "a"), ("d", "b"), ("u", "b")]);
    let feed = read_changes(w.path(), 2, None).await.unwrap();
    assert!(feed.iter().all(|r| r.change_type == "insert"));
    // TRUNCATE empties the changelog too.
    w.apply(&batch(vec![RowChange::Truncate], 300)).await.unwrap();
    assert!(read_rows(w.path()).await.unwrap().is_empty());
    let feed = read_changes(w.path(), 3, None).await.unwrap();
    assert_eq!(feed.len(), 4);
    assert!(feed.iter().all(|r| r.change_type == "delete"));
}

#[tokio::test]
async fn unchanged_values_keep_the_stored_value() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = three_files(dir.path()).await;
    let after = vec![Value::Int(12), Value::Unchanged, Value::Int(9)];
    let before = vec![Value::Int(12), Value::Unchanged, Value::Int(0)];
    w.apply(&batch(vec![upd(before.clone(), after.clone())], 200)).await.unwrap();
    let rows = rows_by_id(w.path()).await;
    assert_eq!((rows[&12]["name"].clone(), rows[&12]["qty"].clone()), (json!("n12"), json!(9)));
    let feed = read_changes(w.path(), 4, None).await.unwrap();
    assert_eq!(brief(&feed), [change("update_preimage", 12, "n12"), change("update_postimage", 12, "n12")]);
    // Within one batch too: the value set earlier in the batch is kept.
    let b = batch(
        vec![
            ins(item(500, "toast", 1)),
            upd(
                vec![Value::Int(500), Value::Unchanged, Value::Int(1)],
                vec![Value::Int(500), Value::Unchanged, Value::Int(2)],
            ),
        ],
        201,
    );
    w.apply(&b).await.unwrap();
    assert_eq!(rows_by_id(w.path()).await[&500]["name"], "toast");
}

fn all_types_schema() -> Arc<TableSchema> {
    let types = vec![
        ("id", ColumnType::Int32),
        ("b", ColumnType::Bool),
        ("i8", ColumnType::Int8),
        ("i16", ColumnType::Int16),
        ("i64", ColumnType::Int64),
        ("u64", ColumnType::UInt64),
        ("f32", ColumnType::Float32),
        ("f64", ColumnType::Float64),
        ("dec", ColumnType::Decimal { precision: 12, scale: 3 }),
        ("bigdec", ColumnType::Decimal { precision: 65, scale: 2 }),
        ("d", ColumnType::Date),
        ("t", ColumnType::Time { fsp: 6 }),
        ("ts", ColumnType::Timestamp),
        ("ntz", ColumnType::TimestampNtz),
        ("txt", ColumnType::Text),
        ("bin", ColumnType::Bytes),
        ("js", ColumnType::Json),
        ("arr", ColumnType::Array { element: Box::new(ColumnType::Int64) }),
        ("tags", ColumnType::Array { element: Box::new(ColumnType::Text) }),
    ];
    Arc::new(TableSchema {
        id: TableId::new("db", "all_types"),
        columns: types.into_iter().map(|(n, t)| col(n, t)).collect(),
        primary_key: vec![0],
    })
}

#[tokio::test]
async fn every_column_type_encodes_and_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let schema = all_types_schema();
    let mut w = open(dir.path(), &schema).await;
    let a = actions(w.path(), 0);
    let protocol = &a["protocol"][0];
    assert_eq!((protocol["minReaderVersion"].clone(), protocol["minWriterVersion"].clone()), (json!(3), json!(7)));
    assert_eq!(protocol["readerFeatures"], json!(["timestampNtz"]));
    let mut wf: Vec<&str> =
        protocol["writerFeatures"].as_array().unwrap().iter().map(|f| f.as_str().unwrap()).collect();
    wf.sort();
    // delta-rs adds appendOnly (supported, not enabled: delta.appendOnly stays unset); Spark
    // needs invariants listed because the key column is NOT NULL.
    assert_eq!(wf, ["appendOnly", "changeDataFeed", "invariants", "timestampNtz"]);
    let full = vec![
        Value::Int(1),
        Value::Bool(true),
        Value::Int(-128),
        Value::Int(32_767),
        Value::Int(i64::MIN),
        Value::UInt(u64::MAX),
        Value::Float(1.5),
        Value::Double(-2.25),
        Value::Decimal { unscaled: -123_456, scale: 3 },
        Value::Decimal { unscaled: 12_345_678_901_234_567_890_123_456_789i128, scale: 2 },
        Value::Date(19_723),
        Value::Time(-(25 * 3600 + 1) * 1_000_000 - 5),
        Value::Timestamp(1_704_067_200_123_456),
        Value::TimestampNtz(1_704_067_200_000_001),
        Value::Text("héllo".into()),
        Value::Bytes(vec![0, 255, 16]),
        Value::Json(r#"{"a": [1, 2]}"#.into()),
        Value::Array(vec![Value::Int(1), Value::Null, Value::Int(3)]),
        Value::Array(vec![Value::Text("x".into())]),
    ];
    let mut nulls = vec![Value::Null; full.len()];
    nulls[0] = Value::Int(2);
    w.apply(&batch(vec![ins(full), ins(nulls)], 10)).await.unwrap();
    let rows = read_rows(w.path()).await.unwrap();
    let one = rows.iter().find(|r| r["id"] == 1).unwrap();
    let expected = json!({
        "id": 1, "b": true, "i8": -128, "i16": 32767, "i64": i64::MIN, "u64": "18446744073709551615",
        "f32": 1.5, "f64": -2.25, "dec": "-123.456", "bigdec": "123456789012345678901234567.89",
        "d": "2024-01-01", "t": "-25:00:01.000005", "ts": "2024-01-01T00:00:00.123456Z",
        "ntz": "2024-01-01T00:00:00.000001", "txt": "héllo", "bin": "00ff10", "js": "{\"a\": [1, 2]}",
        "arr": [1, null, 3], "tags": ["x"],
    });
    for (k, v) in expected.as_object().unwrap() {
        assert_eq!(&one[k], v, "column {k}");
    }
    let two = rows.iter().find(|r| r["id"] == 2).unwrap();
    assert!(expected.as_object().unwrap().keys().filter(|k| *k != "id").all(|k| two[k].is_null()));
    // Stored values come back as values that re-encode: update through a rewrite.
    w.apply(&batch(
        vec![upd(
            vec![Value::Int(1)],
            vec![Value::Int(1), Value::Bool(false)]
                .into_iter()
                .chain(std::iter::repeat_n(Value::Unchanged, 17))
                .collect(),
        )],
        11,
    ))
    .await
    .unwrap();
    let rows = read_rows(w.path()).await.unwrap();
    let one = rows.iter().find(|r| r["id"] == 1).unwrap();
    assert_eq!(one["b"], false);
    for (k, v) in expected.as_object().unwrap().iter().filter(|(k, _)| *k != "b") {
        assert_eq!(&one[k], v, "column {k} after rewrite");
    }
}

#[tokio::test]
async fn values_that_do_not_fit_are_refused_naming_the_column() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = open(dir.path(), &items_schema(true)).await;
    let err = w
        .apply(&batch(vec![ins(vec![Value::Int(1), Value::Text("a".into()), Value::Int(1 << 40)])], 10))
        .await
        .unwrap_err();
    assert!(matches!(err, DeltaError::Encode { ref column, .. } if column == "qty"), "{err}");
    let err = w.apply(&batch(vec![ins(vec![Value::Null, Value::Null, Value::Null])], 10)).await.unwrap_err();
    assert!(matches!(err, DeltaError::Encode { ref column, .. } if column == "id"), "{err}");
    assert_eq!(w.delta_version(), 0);
}

#[tokio::test]
async fn checkpoints_are_written_every_n_commits_and_the_table_reopens_from_them() {
    let dir = tempfile::tempdir().unwrap();
    let schema = items_schema(true);
    let config = DeltaSinkConfig { checkpoint_interval: 3, ..cfg(dir.path()) };
    let mut w = TableWriter::open_or_create(&config, schema.clone(), APP).await.unwrap();
    for i in 1..=4 {
        w.apply(&batch(vec![ins(item(i, "x", i))], 100 + i as u64)).await.unwrap();
    }
    let log = w.path().join("_delta_log");
    assert!(log.join(format!("{:020}.checkpoint.parquet", 3)).exists());
    assert!(!log.join(format!("{:020}.checkpoint.parquet", 2)).exists());
    w.apply(&batch(vec![upd(item(2, "x", 2), item(2, "y", 2))], 200)).await.unwrap();
    let w = TableWriter::open_or_create(&config, schema, APP).await.unwrap();
    assert_eq!(w.committed_version(), Some(pos(200).to_version().unwrap()));
    assert_eq!(w.committed_position(), Some(pos(200)));
    assert_eq!(rows_by_id(w.path()).await.len(), 4);
}

#[tokio::test]
async fn reopened_writer_prunes_files_by_their_statistics() {
    let dir = tempfile::tempdir().unwrap();
    drop(three_files(dir.path()).await);
    let mut w = open(dir.path(), &items_schema(true)).await;
    assert_eq!(w.file_count(), 3);
    let stats =
        w.apply(&batch(vec![del(item(29, "", 0)), upd(item(21, "n21", 0), item(21, "z", 0))], 300)).await.unwrap();
    assert_eq!((stats.files_removed, stats.rows_copied), (1, 8));
}

#[tokio::test]
async fn string_and_composite_keys_are_matched_and_pruned() {
    let dir = tempfile::tempdir().unwrap();
    let schema = Arc::new(TableSchema {
        id: TableId::new("db", "composite"),
        columns: vec![col("tenant", ColumnType::Text), col("n", ColumnType::UInt64), col("v", ColumnType::Text)],
        primary_key: vec![0, 1],
    });
    let row = |t: &str, n: u64, v: &str| vec![Value::Text(t.into()), Value::UInt(n), Value::Text(v.into())];
    let mut w = open(dir.path(), &schema).await;
    w.apply(&batch(vec![ins(row("acme", 1, "a")), ins(row("acme", 2, "b"))], 1)).await.unwrap();
    w.apply(&batch(vec![ins(row("zeta", 1, "c")), ins(row("zeta", u64::MAX, "d"))], 2)).await.unwrap();
    drop(w);
    let mut w = open(dir.path(), &schema).await;
    let stats = w.apply(&batch(vec![upd(row("zeta", u64::MAX, "d"), row("zeta", u64::MAX, "e"))], 3)).await.unwrap();
    assert_eq!((stats.files_removed, stats.rows_copied), (1, 1));
    let rows = read_rows(w.path()).await.unwrap();
    let e = rows.iter().find(|r| r["tenant"] == "zeta" && r["n"] == "18446744073709551615").unwrap();
    assert_eq!(e["v"], "e");
    assert_eq!(rows.len(), 4);
}

#[allow(dead_code)]
fn writer_futures_are_send(w: &mut TableWriter, b: &TableBatch) {
    fn is_send<T: Send>(_: &T) {}
    is_send(&w.apply(b));
    is_send(&w.append_snapshot_chunk(Vec::new(), &b.position, 0, true));
    is_send(&w.reset());
    is_send(&TableWriter::open_or_create(&DeltaSinkConfig::default(), items_schema(true), APP));
    is_send(&read_changes(Path::new("x"), 0, None));
    is_send(&table_status(Path::new("x"), APP));
}

#[tokio::test]
async fn names_that_are_not_directory_names_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let bad = Arc::new(TableSchema { id: TableId::new("..", "t"), ..(*items_schema(true)).clone() });
    let err = TableWriter::open_or_create(&cfg(dir.path()), bad, APP).await.unwrap_err();
    assert!(matches!(err, DeltaError::Unsupported { .. }), "{err}");
}

#[tokio::test]
async fn list_tables_finds_every_table_under_the_root() {
    let dir = tempfile::tempdir().unwrap();
    open(dir.path(), &items_schema(true)).await;
    open(dir.path(), &items_schema(false)).await;
    let found = crate::list_tables(dir.path());
    assert_eq!(found, [dir.path().join("shop/events"), dir.path().join("shop/items")]);
}

#[tokio::test]
async fn list_tables_skips_tributarys_own_directory() {
    let dir = tempfile::tempdir().unwrap();
    open(dir.path(), &items_schema(true)).await;
    // Tributary's state directory, even holding something that looks like a table.
    let own = dir.path().join(crate::TRIBUTARY_DIR);
    std::fs::create_dir_all(own.join("x/_delta_log")).unwrap();
    std::fs::create_dir_all(own.join("_delta_log")).unwrap();
    std::fs::write(own.join("validation.json"), "{}").unwrap();
    assert_eq!(crate::list_tables(dir.path()), [dir.path().join("shop/items")]);
}

#[tokio::test]
async fn reopening_with_a_different_source_schema_keeps_the_tables_own() {
    // The stored schema is the one in force at the committed position; the
    // source's newer schema arrives through the stream as a schema change.
    let dir = tempfile::tempdir().unwrap();
    open(dir.path(), &items_schema(true)).await;
    let mut changed = (*items_schema(true)).clone();
    changed.columns[2].data_type = ColumnType::Int64;
    let w = TableWriter::open_or_create(&cfg(dir.path()), Arc::new(changed), APP).await.unwrap();
    assert_eq!(*w.source_schema(), *items_schema(true));
}

#[tokio::test]
async fn changes_are_refused_while_a_snapshot_copy_is_unfinished() {
    let dir = tempfile::tempdir().unwrap();
    let schema = items_schema(true);
    let config = DeltaSinkConfig { target_file_rows: 2, ..cfg(dir.path()) };
    let mut w = TableWriter::open_or_create(&config, schema.clone(), APP).await.unwrap();
    w.append_snapshot_chunk(vec![item(1, "a", 1), item(2, "b", 2)], &pos(50), 1, false).await.unwrap();
    drop(w);
    let mut w = TableWriter::open_or_create(&config, schema, APP).await.unwrap();
    let err = w.apply(&batch(vec![ins(item(3, "c", 3))], 60)).await.unwrap_err();
    assert!(matches!(err, DeltaError::State { .. }), "{err}");
    w.reset().await.unwrap();
    assert!(w.apply(&batch(vec![ins(item(3, "c", 3))], 60)).await.is_err(), "a reset table waits for its snapshot");
    w.append_snapshot_chunk(vec![item(1, "a", 1)], &pos(50), 1, true).await.unwrap();
    w.apply(&batch(vec![ins(item(3, "c", 3))], 60)).await.unwrap();
    assert_eq!(rows_by_id(w.path()).await.len(), 2);
}

#[tokio::test]
async fn a_second_writer_with_a_stale_view_cannot_commit_the_same_position_twice() {
    let dir = tempfile::tempdir().unwrap();
    let schema = items_schema(true);
    let mut a = open(dir.path(), &schema).await;
    let mut b = open(dir.path(), &schema).await;
    a.apply(&batch(vec![ins(item(1, "a", 1))], 100)).await.unwrap();
    let err = b.apply(&batch(vec![ins(item(1, "a", 1))], 100)).await.unwrap_err();
    // Another process of the same pipeline: never overwritten, never retried.
    assert!(matches!(err, DeltaError::ForeignChange { version: 1, .. }), "{err}");
    assert_eq!(err.class(), tributary_core::ErrorClass::NeedsOperator, "{err}");
    assert!(err.to_string().contains(&format!("pipeline {APP}")), "{err}");
    // After the conflict the writer reloads and sees the stored position.
    let err = b.apply(&batch(vec![ins(item(1, "a", 1))], 100)).await.unwrap_err();
    assert!(matches!(err, DeltaError::PositionBackwards { .. }), "{err}");
    b.apply(&batch(vec![upd(item(1, "a", 1), item(1, "b", 1))], 200)).await.unwrap();
    let rows = rows_by_id(b.path()).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[&1]["name"], "b");
}

/// The Python interpreter with delta-rs' `deltalake` (`TRIBUTARY_PYTHON`, set by `make test`),
/// or `None` (a loud skip; a failure under `CI=true`).
pub(crate) fn independent_reader() -> Option<std::path::PathBuf> {
    let python = std::path::PathBuf::from(std::env::var("TRIBUTARY_PYTHON").unwrap_or_else(|_| "python3".into()));
    let ok =
        std::process::Command::new(&python).args(["-c", "import deltalake"]).output().is_ok_and(|o| o.status.success());
    if ok {
        return Some(python);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "the independent Delta reader is missing: {} cannot import deltalake (run `make setup`)",
            python.display()
        );
    }
    eprintln!(
        "SKIPPED: {} cannot import deltalake; run `make setup` for the independent reader check",
        python.display()
    );
    None
}

pub(crate) fn delta_reader(python: &Path, args: &[&str]) -> J {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/delta_reader.py");
    let out = std::process::Command::new(python).arg(script).args(args).output().unwrap();
    assert!(out.status.success(), "delta_reader.py {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test]
async fn an_independent_reader_sees_the_same_rows_change_feed_and_position() {
    let Some(python) = independent_reader() else { return };
    let dir = tempfile::tempdir().unwrap();
    let config = DeltaSinkConfig { checkpoint_interval: 4, ..cfg(dir.path()) };
    let mut w = TableWriter::open_or_create(&config, items_schema(true), APP).await.unwrap();
    for f in 0..3 {
        let rows = (1..=10).map(|i| ins(item(f * 10 + i, &format!("n{}", f * 10 + i), 0))).collect();
        w.apply(&batch(rows, 100 + f as u64)).await.unwrap();
    }
    let mixed = vec![
        upd(item(15, "n15", 0), item(15, "fifteen", 5)),
        del(item(25, "", 0)),
        ins(item(31, "new", 1)),
        upd(item(31, "new", 1), item(31, "newer", 2)),
    ];
    w.apply(&batch(mixed, 200)).await.unwrap();
    w.apply(&batch(vec![del(item(1, "", 0)), upd(item(2, "n2", 0), item(2, "two", 2))], 300)).await.unwrap();
    let path = w.path().to_str().unwrap().to_string();
    assert!(w.path().join("_delta_log/00000000000000000004.checkpoint.parquet").exists());

    let theirs = delta_reader(&python, &["rows", &path]);
    let mut their_rows: Vec<(i64, J, J)> = theirs["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["id"].as_i64().unwrap(), r["name"].clone(), r["qty"].clone()))
        .collect();
    their_rows.sort_by_key(|r| r.0);
    let ours: Vec<(i64, J, J)> =
        rows_by_id(w.path()).await.into_iter().map(|(id, r)| (id, r["name"].clone(), r["qty"].clone())).collect();
    assert_eq!(their_rows, ours);
    assert_eq!(theirs["version"], 5);

    let their_feed = delta_reader(&python, &["cdf", &path, "4"]);
    let mut theirs: Vec<(i64, String, i64, J)> = their_feed["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["_commit_version"].as_i64().unwrap(),
                r["_change_type"].as_str().unwrap().to_string(),
                r["id"].as_i64().unwrap(),
                r["name"].clone(),
            )
        })
        .collect();
    let mut ours: Vec<(i64, String, i64, J)> = read_changes(w.path(), 4, None)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.commit_version, r.change_type, r.values["id"].as_i64().unwrap(), r.values["name"].clone()))
        .collect();
    theirs.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
    ours.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
    assert_eq!(theirs, ours);
    assert_eq!(ours.len(), 2 + 1 + 3 + 1 + 2);

    let txn = delta_reader(&python, &["txn", &path, APP]);
    assert_eq!(txn["txn"], pos(300).to_version().unwrap());
    assert_eq!(txn["protocol"], json!([1, 4]));

    // Every type, and the timestampNtz table feature.
    let mut t = open(dir.path(), &all_types_schema()).await;
    let mut full = vec![Value::Null; 19];
    full[0] = Value::Int(1);
    full[5] = Value::UInt(u64::MAX);
    full[8] = Value::Decimal { unscaled: -123_456, scale: 3 };
    full[12] = Value::Timestamp(1_704_067_200_123_456);
    full[13] = Value::TimestampNtz(1_704_067_200_000_001);
    full[15] = Value::Bytes(vec![0, 255]);
    full[17] = Value::Array(vec![Value::Int(1), Value::Null]);
    t.apply(&batch(vec![ins(full)], 10)).await.unwrap();
    let theirs = delta_reader(&python, &["rows", t.path().to_str().unwrap()]);
    let row = &theirs["rows"][0];
    assert_eq!(row["u64"], "18446744073709551615");
    assert_eq!(row["dec"], "-123.456");
    assert_eq!(row["ts"], "2024-01-01T00:00:00.123456+00:00");
    assert_eq!(row["ntz"], "2024-01-01T00:00:00.000001");
    assert_eq!(row["bin"], "00ff");
    assert_eq!(row["arr"], json!([1, null]));
    assert_eq!(delta_reader(&python, &["txn", t.path().to_str().unwrap(), APP])["protocol"], json!([3, 7]));
}

#[tokio::test]
#[ignore = "writes sample tables to $TRIBUTARY_SAMPLE_DIR for manual inspection"]
async fn write_sample_tables() {
    let root = std::path::PathBuf::from(std::env::var("TRIBUTARY_SAMPLE_DIR").unwrap());
    let config = DeltaSinkConfig { checkpoint_interval: 3, target_file_rows: 4, ..cfg(&root) };
    let mut w = TableWriter::open_or_create(&config, items_schema(true), APP).await.unwrap();
    for f in 0..3 {
        let rows = (1..=10).map(|i| ins(item(f * 10 + i, &format!("n{}", f * 10 + i), 0))).collect();
        w.apply(&batch(rows, 100 + f as u64)).await.unwrap();
    }
    w.apply(&batch(
        vec![upd(item(15, "n15", 0), item(15, "fifteen", 5)), del(item(25, "", 0)), ins(item(31, "new", 1))],
        200,
    ))
    .await
    .unwrap();
    w.apply(&batch(vec![RowChange::Truncate, ins(item(99, "after", 0))], 300)).await.unwrap();
    let mut e = open(&root, &items_schema(false)).await;
    e.apply(&batch(vec![ins(item(1, "a", 1)), upd(item(1, "a", 1), item(1, "b", 2)), del(item(1, "b", 2))], 100))
        .await
        .unwrap();
    let mut t = open(&root, &all_types_schema()).await;
    let full = vec![
        Value::Int(1),
        Value::Bool(true),
        Value::Int(-128),
        Value::Int(32_767),
        Value::Int(i64::MIN),
        Value::UInt(u64::MAX),
        Value::Float(1.5),
        Value::Double(-2.25),
        Value::Decimal { unscaled: -123_456, scale: 3 },
        Value::Decimal { unscaled: 12_345_678_901_234_567_890_123_456_789i128, scale: 2 },
        Value::Date(19_723),
        Value::Time(-(25 * 3600 + 1) * 1_000_000 - 5),
        Value::Timestamp(1_704_067_200_123_456),
        Value::TimestampNtz(1_704_067_200_000_001),
        Value::Text("héllo".into()),
        Value::Bytes(vec![0, 255, 16]),
        Value::Json(r#"{"a": [1, 2]}"#.into()),
        Value::Array(vec![Value::Int(1), Value::Null, Value::Int(3)]),
        Value::Array(vec![Value::Text("x".into())]),
    ];
    let mut nulls = vec![Value::Null; full.len()];
    nulls[0] = Value::Int(2);
    t.apply(&batch(vec![ins(full.clone()), ins(nulls)], 10)).await.unwrap();
    let mut after = full.clone();
    after[1] = Value::Bool(false);
    t.apply(&batch(vec![upd(full, after)], 11)).await.unwrap();
    let snap = Arc::new(TableSchema { id: TableId::new("shop", "snap"), ..(*items_schema(true)).clone() });
    let mut s = TableWriter::open_or_create(&config, snap, APP).await.unwrap();
    s.append_snapshot_chunk((0..6).map(|i| item(i, "old", 0)).collect(), &pos(5), 1, false).await.unwrap();
    s.reset().await.unwrap();
    s.append_snapshot_chunk((0..6).map(|i| item(i, "s", 0)).collect(), &pos(5), 1, false).await.unwrap();
    s.append_snapshot_chunk((6..10).map(|i| item(i, "s", 0)).collect(), &pos(5), 1, true).await.unwrap();
    s.apply(&batch(vec![upd(item(5, "s", 0), item(5, "five", 5)), del(item(9, "s", 0))], 6)).await.unwrap();
}

/// Rough throughput numbers (run in release: `cargo test --release -p tributary-delta -- --ignored --nocapture throughput`).
mod throughput {
    use super::*;
    use std::time::Instant;

    fn wide_schema() -> Arc<TableSchema> {
        Arc::new(TableSchema {
            id: TableId::new("bench", "orders"),
            columns: vec![
                Column { nullable: false, ..col("id", ColumnType::Int64) },
                col("customer", ColumnType::Text),
                col("qty", ColumnType::Int32),
                col("price", ColumnType::Decimal { precision: 12, scale: 2 }),
                col("created", ColumnType::Timestamp),
                col("note", ColumnType::Text),
            ],
            primary_key: vec![0],
        })
    }

    fn order(id: i64, v: i64) -> Vec<Value> {
        vec![
            Value::Int(id),
            Value::Text(format!("customer-{}", id % 5000)),
            Value::Int(v % 100),
            Value::Decimal { unscaled: ((id * 37 + v) % 1_000_000) as i128, scale: 2 },
            Value::Timestamp(1_700_000_000_000_000 + id * 1000),
            Value::Text(format!("note {v} for order {id}")),
        ]
    }

    /// A small deterministic generator (no extra dependency).
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            self.0 >> 33
        }
    }

    #[tokio::test]
    #[ignore = "benchmark"]
    async fn throughput_inserts() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = open(dir.path(), &wide_schema()).await;
        let (batches, per_batch) = (50, 20_000);
        let data: Vec<TableBatch> = (0..batches)
            .map(|b| batch((0..per_batch).map(|i| ins(order(b * per_batch + i, 0))).collect(), 1000 + b as u64))
            .collect();
        let started = Instant::now();
        for b in &data {
            w.apply(b).await.unwrap();
        }
        let secs = started.elapsed().as_secs_f64();
        let rows = (batches * per_batch) as f64;
        eprintln!("inserts: {rows} rows in {secs:.2}s = {:.0} rows/s ({per_batch} rows per commit)", rows / secs);
    }

    #[tokio::test]
    #[ignore = "benchmark"]
    async fn throughput_update_delete_mix_over_a_million_rows() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = open(dir.path(), &wide_schema()).await;
        let n: i64 = 1_000_000;
        let started = Instant::now();
        for chunk in 0..(n / 50_000) {
            let rows: Vec<_> = (chunk * 50_000..(chunk + 1) * 50_000).map(|i| order(i, 0)).collect();
            w.append_snapshot_chunk(rows, &pos(10), 1, false).await.unwrap();
        }
        w.append_snapshot_chunk(vec![], &pos(10), 1, true).await.unwrap();
        let secs = started.elapsed().as_secs_f64();
        eprintln!("snapshot: {n} rows in {secs:.2}s = {:.0} rows/s, {} files", n as f64 / secs, w.file_count());

        let mut deleted = std::collections::HashSet::new();
        for per_batch in [5_000usize, 20_000, 50_000] {
            let mut rng = Lcg(per_batch as u64);
            let mut next_id = n + per_batch as i64 * 1000;
            let rounds = 5;
            let mut copied = 0;
            let started = Instant::now();
            for round in 0..rounds {
                let mut changes = Vec::with_capacity(per_batch);
                let mut seen = std::collections::HashSet::new();
                while changes.len() < per_batch {
                    let r = rng.next() % 10;
                    let id = (rng.next() % n as u64) as i64;
                    if deleted.contains(&id) || !seen.insert(id) {
                        continue;
                    }
                    changes.push(match r {
                        0..=6 => upd(order(id, 0), order(id, round + 1)),
                        7..=8 => {
                            deleted.insert(id);
                            del(order(id, 0))
                        }
                        _ => {
                            next_id += 1;
                            ins(order(next_id, 0))
                        }
                    });
                }
                let at = 100_000 + per_batch as u64 * 10 + round as u64;
                let stats = w.apply(&batch(changes, at)).await.unwrap();
                copied += stats.rows_copied;
            }
            let secs = started.elapsed().as_secs_f64();
            let total = (rounds as usize * per_batch) as f64;
            eprintln!(
                "update/delete mix: {per_batch} changes per commit: {:.0} changes/s ({:.2}s per commit, {} rows copied per commit, {} files)",
                total / secs,
                secs / rounds as f64,
                copied / rounds as u64,
                w.file_count()
            );
        }
    }
}

/// `items` after `ALTER TABLE items DROP name, MODIFY qty BIGINT, ADD price DECIMAL(10,2)`.
fn evolved_schema() -> Arc<TableSchema> {
    let mut schema = (*items_schema(true)).clone();
    schema.columns.remove(1);
    schema.columns[1] = Column { source_type: "bigint".into(), ..col("qty", ColumnType::Int64) };
    schema.columns.push(Column {
        source_type: "decimal(10,2)".into(),
        ..col("price", ColumnType::Decimal { precision: 10, scale: 2 })
    });
    Arc::new(schema)
}

#[tokio::test]
async fn schema_changes_add_keep_dropped_widen_and_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let schema = items_schema(true);
    let mut w = open(dir.path(), &schema).await;
    w.apply(&batch(vec![ins(item(1, "a", 1)), ins(item(2, "b", 2))], 100)).await.unwrap();

    let evolved = evolved_schema();
    let changes = w
        .change_schema(&evolved, &pos(200), &[("price".into(), Value::Decimal { unscaled: 100, scale: 2 })], &[])
        .await
        .unwrap();
    let kinds: Vec<&str> = changes.iter().map(|c| c.kind()).collect();
    // INT -> BIGINT: both are Delta `long`, so only the mapping changes.
    assert_eq!(kinds, ["change_type", "add_column", "drop_column"], "{changes:?}");
    assert_eq!(*w.source_schema(), *evolved);
    // A replay of the same change (at or below the stored position) does nothing.
    assert!(w.change_schema(&evolved, &pos(100), &[], &[]).await.unwrap().is_empty());

    let big = 5_000_000_000i64;
    let row = |id: i64, qty: i64, cents: i128| {
        vec![Value::Int(id), Value::Int(qty), Value::Decimal { unscaled: cents, scale: 2 }]
    };
    w.apply(&batch(vec![ins(row(3, big, 1250)), upd(row(1, 1, 0), row(1, big + 1, 99))], 300)).await.unwrap();

    let rows = rows_by_id(w.path()).await;
    assert_eq!(rows[&1]["qty"], json!(big + 1));
    assert_eq!(rows[&1]["name"], J::Null, "a dropped column is NULL in row versions after the drop: {rows:?}");
    assert_eq!(rows[&2]["qty"], json!(2));
    assert_eq!(rows[&2]["price"], json!("1.00"), "rows from before the column read its default");
    assert_eq!(rows[&3]["name"], J::Null);
    assert_eq!(rows[&3]["price"], json!("12.50"));

    // Reopened with the source's original schema, the table keeps its own.
    drop(w);
    let w = open(dir.path(), &schema).await;
    assert_eq!(*w.source_schema(), *evolved);
    assert_eq!(w.committed_position(), Some(pos(300)));
}

#[tokio::test]
async fn a_widened_decimal_rewrites_the_data_files_with_the_new_type() {
    let dir = tempfile::tempdir().unwrap();
    let decimal = |p: u8| Column {
        source_type: format!("decimal({p},2)"),
        ..col("price", ColumnType::Decimal { precision: p, scale: 2 })
    };
    let mut priced = (*items_schema(true)).clone();
    priced.columns.push(decimal(10));
    let priced = Arc::new(priced);
    let mut w = open(dir.path(), &priced).await;
    let row = |id: i64, cents: i128| {
        vec![Value::Int(id), Value::Text("a".into()), Value::Int(1), Value::Decimal { unscaled: cents, scale: 2 }]
    };
    w.apply(&batch(vec![ins(row(1, 150))], 100)).await.unwrap();
    let mut wider = (*priced).clone();
    wider.columns[3] = decimal(14);
    let changes = w.change_schema(&Arc::new(wider), &pos(200), &[], &[]).await.unwrap();
    assert_eq!(changes.iter().map(|c| c.kind()).collect::<Vec<_>>(), ["widen_type"]);
    w.apply(&batch(vec![ins(row(2, 99_999_999_999))], 300)).await.unwrap();
    let table = crate::table::open_existing(w.path()).await.unwrap();
    let price = table.snapshot().unwrap().schema().field("price").unwrap().data_type().to_string();
    assert_eq!(price, "decimal(14,2)");
    let rows = rows_by_id(w.path()).await;
    assert_eq!((&rows[&1]["price"], &rows[&2]["price"]), (&json!("1.50"), &json!("999999999.99")), "{rows:?}");
}

#[tokio::test]
async fn an_incompatible_change_is_refused_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let schema = items_schema(true);
    let mut w = open(dir.path(), &schema).await;
    w.apply(&batch(vec![ins(item(1, "a", 1))], 100)).await.unwrap();
    let version = w.delta_version();
    let mut changed = (*schema).clone();
    changed.columns[1] = Column { source_type: "int".into(), ..col("name", ColumnType::Int32) };
    let err = w.change_schema(&changed, &pos(200), &[], &[]).await.unwrap_err();
    assert!(matches!(err, DeltaError::SchemaChange { .. }), "{err}");
    assert!(err.to_string().contains("name"), "{err}");
    assert_eq!(w.delta_version(), version);
}

#[tokio::test]
async fn under_the_string_policy_an_incompatible_change_stores_the_column_as_text() {
    let dir = tempfile::tempdir().unwrap();
    let config = DeltaSinkConfig { incompatible_type_changes: crate::TypeChangePolicy::String, ..cfg(dir.path()) };
    let schema = items_schema(true);
    let mut w = TableWriter::open_or_create(&config, schema.clone(), APP).await.unwrap();
    w.apply(&batch(vec![ins(item(1, "a", 7))], 100)).await.unwrap();
    // name TEXT -> INT (already string in Delta), qty INT -> DATE (rewritten as text).
    let mut changed = (*schema).clone();
    changed.columns[1] = Column { source_type: "int".into(), ..col("name", ColumnType::Int32) };
    changed.columns[2] = Column { source_type: "date".into(), ..col("qty", ColumnType::Date) };
    let changed = Arc::new(changed);
    let changes = w.change_schema(&changed, &pos(200), &[], &[]).await.unwrap();
    assert_eq!(changes.iter().map(|c| c.kind()).collect::<Vec<_>>(), ["map_to_string", "map_to_string"]);
    assert_eq!(*w.source_schema(), *changed, "decoding goes on with the source's types");
    w.apply(&batch(vec![ins(vec![Value::Int(2), Value::Int(42), Value::Date(19_782)])], 300)).await.unwrap();
    let rows = rows_by_id(w.path()).await;
    assert_eq!((&rows[&1]["name"], &rows[&1]["qty"]), (&json!("a"), &json!("7")), "{rows:?}");
    assert_eq!((&rows[&2]["name"], &rows[&2]["qty"]), (&json!("42"), &json!("2024-02-29")), "{rows:?}");
    // Reopened, the table still stores both as text.
    drop(w);
    let w = TableWriter::open_or_create(&config, changed.clone(), APP).await.unwrap();
    let table = crate::table::open_existing(w.path()).await.unwrap();
    let snapshot = table.snapshot().unwrap();
    let types: Vec<String> =
        ["name", "qty"].iter().map(|c| snapshot.schema().field(c).unwrap().data_type().to_string()).collect();
    assert_eq!(types, ["string", "string"]);
    // Under the default policy the same change stops the table.
    let other = tempfile::tempdir().unwrap();
    let mut w = open(other.path(), &schema).await;
    w.apply(&batch(vec![ins(item(1, "a", 7))], 100)).await.unwrap();
    let err = w.change_schema(&changed, &pos(200), &[], &[]).await.unwrap_err().to_string();
    assert!(err.contains("incompatible_type_changes"), "{err}");
}

#[tokio::test]
async fn a_column_added_again_after_a_drop_keeps_the_values_it_held() {
    let dir = tempfile::tempdir().unwrap();
    let schema = items_schema(true);
    let mut w = open(dir.path(), &schema).await;
    w.apply(&batch(vec![ins(item(1, "a", 1))], 100)).await.unwrap();
    let mut dropped = (*schema).clone();
    dropped.columns.remove(1);
    w.change_schema(&dropped, &pos(200), &[], &[]).await.unwrap();
    let changes = w.change_schema(&schema, &pos(300), &[("name".into(), Value::Text("d".into()))], &[]).await.unwrap();
    assert_eq!(changes.iter().map(|c| c.kind()).collect::<Vec<_>>(), ["add_column"]);
    let rows = rows_by_id(w.path()).await;
    assert_eq!(rows[&1]["name"], json!("a"), "never rewritten with a default: {rows:?}");
}

#[tokio::test]
async fn a_renamed_column_carries_its_values_over_and_keeps_the_old_name() {
    let dir = tempfile::tempdir().unwrap();
    let schema = items_schema(true);
    let mut w = open(dir.path(), &schema).await;
    w.apply(&batch(vec![ins(item(1, "a", 1))], 100)).await.unwrap();
    let mut renamed = (*schema).clone();
    renamed.columns[1].name = "label".into();
    let changes = w.change_schema(&renamed, &pos(200), &[], &[("name".into(), "label".into())]).await.unwrap();
    assert_eq!(changes, [crate::ColumnChange::Renamed { from: "name".into(), to: "label".into() }]);
    w.apply(&batch(vec![ins(item(2, "b", 2))], 300)).await.unwrap();
    let rows = rows_by_id(w.path()).await;
    assert_eq!((&rows[&1]["label"], &rows[&1]["name"]), (&json!("a"), &json!("a")), "older rows: {rows:?}");
    assert_eq!((&rows[&2]["label"], &rows[&2]["name"]), (&json!("b"), &J::Null), "newer rows: {rows:?}");
}

#[tokio::test]
async fn a_table_of_another_pipeline_or_source_is_refused_and_adopt_carries_its_position_over() {
    let dir = tempfile::tempdir().unwrap();
    let config = cfg(dir.path());
    let a = crate::Owner::new("a", "mariadb:server_id=1,gtid_domain_id=0");
    let mut w = TableWriter::open_or_create(&config, items_schema(true), a.clone()).await.unwrap();
    w.apply(&batch(vec![ins(item(1, "a", 1)), ins(item(2, "b", 2))], 100)).await.unwrap();
    let version = w.delta_version();
    drop(w);

    let b = crate::Owner::new("b", "mariadb:server_id=1,gtid_domain_id=0");
    let err = TableWriter::open_or_create(&config, items_schema(true), b.clone()).await.unwrap_err();
    assert!(matches!(err, DeltaError::NotOwner { .. }), "{err}");
    let shard = crate::Owner::new("a", "mariadb:server_id=2,gtid_domain_id=0");
    let err = TableWriter::open_or_create(&config, items_schema(true), shard).await.unwrap_err().to_string();
    assert!(err.contains("server_id=1") && err.contains("tributary adopt"), "{err}");
    assert_eq!(
        TableWriter::open_or_create(&config, items_schema(true), a.clone()).await.unwrap().delta_version(),
        version
    );

    // A table prefix keeps a shard's tables apart under the same root.
    let prefixed = DeltaSinkConfig { table_prefix: Some("shard2".into()), ..config.clone() };
    let other = TableWriter::open_or_create(&prefixed, items_schema(true), b.clone()).await.unwrap();
    assert_eq!(other.path(), dir.path().join("shard2/shop/items"));

    let id = items_schema(true).id.clone();
    let adopted = crate::adopt(&config, &id, &b).await.unwrap();
    assert_eq!(adopted.previous, Some(a.clone()));
    assert_eq!(adopted.continues_from, Some(pos(100)));
    let mut w = TableWriter::open_or_create(&config, items_schema(true), b.clone()).await.unwrap();
    assert_eq!(w.committed_version(), Some(pos(100).to_version().unwrap()));
    assert!(w.snapshot_complete());
    w.apply(&batch(vec![upd(item(1, "a", 1), item(1, "z", 9))], 200)).await.unwrap();
    let rows = rows_by_id(w.path()).await;
    assert_eq!((rows.len(), rows[&1]["name"].clone()), (2, json!("z")));
    assert!(TableWriter::open_or_create(&config, items_schema(true), a).await.is_err(), "a gave the table away");
}

// ---- Other writers between planning and committing (issue 12) ----

/// Another writer compacts the table: every active data file is replaced by
/// one file with the same rows (Remove and Add with `dataChange = false`), as
/// delta-rs' `optimize.compact()` and Spark's OPTIMIZE do. Returns the new
/// file's path.
async fn compact_as_another_writer(table_dir: &Path, schema: &Arc<TableSchema>) -> String {
    use crate::commit::WritableTable;
    use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
    let layout = crate::schema::TableLayout::new(schema.clone());
    let table = crate::table::open_existing(table_dir).await.unwrap();
    let index = crate::table::file_index(&table, &layout).unwrap();
    let mut batches = Vec::new();
    let mut actions = Vec::new();
    for (path, entry) in &index.files {
        batches.extend(
            crate::files::read_file(&crate::storage::TableFiles::Local(table_dir.to_path_buf()), path).unwrap(),
        );
        actions.push(crate::commit::remove_action_no_data_change(path, entry.size));
    }
    let written = crate::files::write_file(
        &crate::storage::TableFiles::Local(table_dir.to_path_buf()),
        crate::files::data_file_name(),
        &layout,
        &layout.arrow,
        &batches,
        true,
    )
    .unwrap();
    let mut add = crate::commit::add_action(&written.rel_path, written.size, written.stats.json.clone());
    if let deltalake::kernel::Action::Add(a) = &mut add {
        a.data_change = false;
    }
    actions.push(add);
    let state = table.snapshot().unwrap();
    CommitBuilder::from(CommitProperties::default())
        .with_actions(actions)
        .build(
            Some(&WritableTable::new(state)),
            table.log_store(),
            deltalake::protocol::DeltaOperation::Optimize { predicate: None, target_size: 1 << 20 },
        )
        .await
        .unwrap();
    written.rel_path
}

/// Another writer (a user's INSERT through Spark or delta-rs) appends `rows` in a file of its own.
async fn append_as_another_writer(table_dir: &Path, schema: &Arc<TableSchema>, rows: Vec<Vec<Value>>) {
    use crate::commit::WritableTable;
    use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
    let layout = crate::schema::TableLayout::new(schema.clone());
    let table = crate::table::open_existing(table_dir).await.unwrap();
    let meta =
        crate::encode::RowMeta { op: None, position: None, source_version: None, commit_ts: None, change_seq: None };
    let out: Vec<crate::encode::OutRow> = rows
        .iter()
        .map(|r| crate::encode::OutRow { values: std::borrow::Cow::Borrowed(r), meta: meta.clone() })
        .collect();
    let refs: Vec<&crate::encode::OutRow> = out.iter().collect();
    let batch = crate::encode::encode(&layout, &refs, None).unwrap();
    let written = crate::files::write_file(
        &crate::storage::TableFiles::Local(table_dir.to_path_buf()),
        crate::files::data_file_name(),
        &layout,
        &layout.arrow,
        &[batch],
        true,
    )
    .unwrap();
    let add = crate::commit::add_action(&written.rel_path, written.size, written.stats.json.clone());
    let state = table.snapshot().unwrap();
    CommitBuilder::from(CommitProperties::default())
        .with_actions(vec![add])
        .build(
            Some(&WritableTable::new(state)),
            table.log_store(),
            deltalake::protocol::DeltaOperation::Write {
                mode: deltalake::protocol::SaveMode::Append,
                partition_by: None,
                predicate: None,
            },
        )
        .await
        .unwrap();
}

/// Another writer commits `metadata` (e.g. `ALTER TABLE ... SET TBLPROPERTIES`).
async fn set_property_as_another_writer(table_dir: &Path, key: &str, value: &str) {
    use crate::commit::WritableTable;
    use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
    use deltalake::kernel::MetadataExt as _;
    let table = crate::table::open_existing(table_dir).await.unwrap();
    let state = table.snapshot().unwrap();
    let metadata = state.metadata().clone().add_config_key(key.to_string(), value.to_string()).unwrap();
    let operation = deltalake::protocol::DeltaOperation::SetTableProperties {
        properties: [(key.to_string(), value.to_string())].into_iter().collect(),
    };
    CommitBuilder::from(CommitProperties::default())
        .with_actions(vec![deltalake::kernel::Action::Metadata(metadata)])
        .build(Some(&WritableTable::new(state)), table.log_store(), operation)
        .await
        .unwrap();
}

/// Every parquet file under the table that no Add or AddCDCFile of the log names.
fn unreferenced_files(table: &Path, upto: i64) -> Vec<String> {
    let mut named = std::collections::BTreeSet::new();
    for v in 0..=upto {
        let a = actions(table, v);
        for kind in ["add", "cdc"] {
            for action in a.get(kind).into_iter().flatten() {
                named.insert(action["path"].as_str().unwrap().to_string());
            }
        }
    }
    let mut found = Vec::new();
    for dir in [table.to_path_buf(), table.join(crate::files::CHANGE_DATA_DIR)] {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let rel = entry.path().strip_prefix(table).unwrap().to_string_lossy().into_owned();
            if rel.ends_with(".parquet") && !named.contains(&rel) {
                found.push(rel);
            }
        }
    }
    found
}

#[tokio::test]
async fn an_update_batch_planned_before_an_external_compaction_is_replanned_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let schema = items_schema(true);
    let mut w = three_files(dir.path()).await;
    // The writer's view stays at version 3; the compaction lands as version 4.
    let compacted = compact_as_another_writer(w.path(), &schema).await;
    let changes = vec![
        upd(item(5, "n5", 0), item(5, "five", 5)),
        upd(item(15, "n15", 0), item(15, "fifteen", 15)),
        del(item(25, "n25", 0)),
        ins(item(31, "new", 1)),
    ];
    let stats = w.apply(&batch(changes, 200)).await.unwrap();
    assert_eq!(stats.delta_version, 5);
    assert_eq!(w.committed_version(), Some(pos(200).to_version().unwrap()));

    // The re-planned commit rewrote the compacted file, not the three it replaced.
    let a = actions(w.path(), 5);
    let removed: Vec<&str> = a["remove"].iter().map(|r| r["path"].as_str().unwrap()).collect();
    assert_eq!(removed, [compacted.as_str()]);
    assert_eq!(active_files(w.path(), 5).len(), w.file_count());

    // Each key once, with the batch's values.
    let all = read_rows(w.path()).await.unwrap();
    assert_eq!(all.len(), 30, "no duplicate rows: {all:?}");
    let rows = rows_by_id(w.path()).await;
    assert_eq!(rows.len(), 30);
    assert_eq!((rows[&5]["name"].clone(), rows[&5]["qty"].clone()), (json!("five"), json!(5)));
    assert_eq!(rows[&15]["name"], "fifteen");
    assert!(!rows.contains_key(&25));
    assert_eq!(rows[&31]["name"], "new");
    assert_eq!(rows[&14]["name"], "n14");

    // The compaction adds no change rows; the batch's commit exactly its changes.
    assert!(read_changes(w.path(), 4, Some(4)).await.unwrap().is_empty());
    let mut feed = brief(&read_changes(w.path(), 5, Some(5)).await.unwrap());
    feed.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
    assert_eq!(
        feed,
        [
            change("update_postimage", 5, "five"),
            change("update_preimage", 5, "n5"),
            change("update_postimage", 15, "fifteen"),
            change("update_preimage", 15, "n15"),
            change("delete", 25, "n25"),
            change("insert", 31, "new"),
        ]
    );
    // The abandoned plan's files were deleted.
    assert_eq!(unreferenced_files(w.path(), 5), Vec::<String>::new());

    // A fresh writer sees the same table.
    drop(w);
    let w = open(dir.path(), &schema).await;
    assert_eq!(w.committed_position(), Some(pos(200)));
    assert_eq!(w.file_count(), active_files(w.path(), 5).len());
}

#[tokio::test]
async fn a_pure_append_after_an_external_compaction_commits_its_files_as_planned() {
    let dir = tempfile::tempdir().unwrap();
    let schema = items_schema(true);
    let mut w = three_files(dir.path()).await;
    compact_as_another_writer(w.path(), &schema).await;
    let stats = w.apply(&batch(vec![ins(item(31, "a", 1)), ins(item(32, "b", 2))], 200)).await.unwrap();
    assert_eq!((stats.delta_version, stats.files_added, stats.files_removed), (5, 1, 0));
    let a = actions(w.path(), 5);
    assert_eq!((count(&a, "add"), count(&a, "remove"), count(&a, "cdc"), count(&a, "txn")), (1, 0, 0, 1));
    assert_eq!(rows_by_id(w.path()).await.len(), 32);
    assert_eq!(read_rows(w.path()).await.unwrap().len(), 32);
    assert_eq!(unreferenced_files(w.path(), 5), Vec::<String>::new());
    // The index follows the log: an update of a compacted row rewrites the compacted file.
    w.apply(&batch(vec![upd(item(3, "n3", 0), item(3, "three", 3))], 300)).await.unwrap();
    assert_eq!(read_rows(w.path()).await.unwrap().len(), 32);
    assert_eq!(rows_by_id(w.path()).await[&3]["name"], "three");
}

#[tokio::test]
async fn truncate_and_reset_after_an_external_compaction_remove_the_compacted_file_too() {
    let dir = tempfile::tempdir().unwrap();
    let schema = items_schema(true);
    let mut w = three_files(dir.path()).await;
    compact_as_another_writer(w.path(), &schema).await;
    w.apply(&batch(vec![RowChange::Truncate, ins(item(40, "after", 1))], 200)).await.unwrap();
    let rows = rows_by_id(w.path()).await;
    assert_eq!(rows.keys().copied().collect::<Vec<_>>(), [40]);
    let deletes =
        read_changes(w.path(), 5, Some(5)).await.unwrap().iter().filter(|r| r.change_type == "delete").count();
    assert_eq!(deletes, 30);

    compact_as_another_writer(w.path(), &schema).await;
    w.reset().await.unwrap();
    assert!(read_rows(w.path()).await.unwrap().is_empty());
    assert_eq!(w.file_count(), 0);
    assert_eq!(unreferenced_files(w.path(), w.delta_version()), Vec::<String>::new());
}

#[tokio::test]
async fn a_schema_rewrite_after_an_external_compaction_is_replanned_on_the_compacted_file() {
    let dir = tempfile::tempdir().unwrap();
    let schema = items_schema(true);
    let mut w = three_files(dir.path()).await;
    compact_as_another_writer(w.path(), &schema).await;
    let mut added = (*schema).clone();
    added.columns.push(Column { source_type: "int".into(), ..col("extra", ColumnType::Int32) });
    w.change_schema(&added, &pos(200), &[("extra".into(), Value::Int(7))], &[]).await.unwrap();
    let all = read_rows(w.path()).await.unwrap();
    assert_eq!(all.len(), 30, "no duplicate rows");
    assert!(all.iter().all(|r| r["extra"] == json!(7)), "{all:?}");
    assert_eq!(w.file_count(), 1);
}

#[tokio::test]
async fn a_property_set_by_another_writer_is_kept_and_an_unwritable_change_stops_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = three_files(dir.path()).await;
    set_property_as_another_writer(w.path(), "delta.logRetentionDuration", "interval 60 days").await;
    w.apply(&batch(vec![upd(item(5, "n5", 0), item(5, "five", 5))], 200)).await.unwrap();
    let a = actions(w.path(), 5);
    assert_eq!(count(&a, "metaData"), 0, "the other writer's metadata stays");
    assert_eq!(rows_by_id(w.path()).await[&5]["name"], "five");

    set_property_as_another_writer(w.path(), "delta.enableChangeDataFeed", "false").await;
    let err = w.apply(&batch(vec![upd(item(6, "n6", 0), item(6, "six", 6))], 300)).await.unwrap_err();
    assert!(matches!(err, DeltaError::ForeignChange { version: 6, .. }), "{err}");
    assert_eq!(err.class(), tributary_core::ErrorClass::NeedsOperator);
    let msg = err.to_string();
    assert!(msg.contains("enableChangeDataFeed") && msg.contains("commit 6") && !msg.contains('\n'), "{msg}");
    assert_eq!(w.delta_version(), 6, "nothing committed");
    assert_eq!(unreferenced_files(w.path(), 6), Vec::<String>::new());
}

/// Measures a re-plan after an external compaction of a large table
/// (`TRIBUTARY_REPLAN_ROWS` rows, default 1,000,000): the table is copied as
/// snapshot files of 100,000 rows, another writer compacts them into one
/// file, and a batch of 1,000 random-key updates planned before the
/// compaction is committed.
/// `cargo test -p tributary-delta --lib measure_a_replan -- --ignored --nocapture`
#[tokio::test]
#[ignore]
async fn measure_a_replan_after_an_external_compaction_of_a_large_table() {
    use std::time::Instant;
    let rows: i64 = std::env::var("TRIBUTARY_REPLAN_ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let schema = items_schema(true);
    let config = DeltaSinkConfig { target_file_rows: 100_000, ..cfg(dir.path()) };
    let mut w = TableWriter::open_or_create(&config, schema.clone(), APP).await.unwrap();
    let chunk = 100_000;
    let mut first = 1;
    while first <= rows {
        let last = (first + chunk - 1).min(rows);
        let part: Vec<Vec<Value>> = (first..=last).map(|i| item(i, &format!("name {i}"), i)).collect();
        w.append_snapshot_chunk(part, &pos(100), 0, last == rows).await.unwrap();
        first = last + 1;
    }
    let files_before = w.file_count();
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut updates = |tag: &str| -> TableBatch {
        let changes = (0..1000)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let id = 1 + (seed % rows as u64) as i64;
                upd(item(id, "", 0), item(id, tag, 1))
            })
            .collect();
        batch(changes, if tag == "a" { 200 } else { 300 })
    };
    let started = Instant::now();
    compact_as_another_writer(w.path(), &schema).await;
    let compaction = started.elapsed();

    let started = Instant::now();
    let stale = w.apply(&updates("a")).await.unwrap();
    let stale_total = started.elapsed();
    assert_eq!(stale.conflicts, 1);
    let started = Instant::now();
    let current = w.apply(&updates("b")).await.unwrap();
    let current_total = started.elapsed();
    assert_eq!(current.conflicts, 0);
    let table = crate::table::open_existing(w.path()).await.unwrap();
    let layout = crate::schema::TableLayout::new(schema.clone());
    let index = crate::table::file_index(&table, &layout).unwrap();
    assert_eq!(index.files.values().map(|e| e.rows.unwrap()).sum::<i64>(), rows, "each row once");
    eprintln!(
        "{rows} rows in {files_before} files compacted into 1 by another writer in {compaction:?}; \
         1,000 random-key updates planned before it: commit with re-plan {stale_total:?} \
         (re-plan {:?}, {} rows copied, {} files written); the next 1,000 on the current state: {current_total:?} \
         ({} rows copied)",
        stale.replan_duration, stale.rows_copied, stale.files_added, current.rows_copied
    );
}

#[tokio::test]
async fn rows_another_writer_appended_are_looked_up_when_the_batch_is_replanned() {
    let dir = tempfile::tempdir().unwrap();
    let schema = items_schema(true);
    let mut w = three_files(dir.path()).await;
    // Someone else appends a second row for key 5.
    append_as_another_writer(w.path(), &schema, vec![item(5, "user's", 9)]).await;
    // Planned before that append, the update of key 5 would leave the user's row behind.
    w.apply(&batch(vec![upd(item(5, "n5", 0), item(5, "five", 5))], 200)).await.unwrap();
    let all = read_rows(w.path()).await.unwrap();
    assert_eq!(all.iter().filter(|r| r["id"] == json!(5)).count(), 1, "{all:?}");
    assert_eq!(all.len(), 30);
    assert_eq!(rows_by_id(w.path()).await[&5]["name"], "five");
}

#[tokio::test]
async fn a_running_writer_stops_writing_a_table_adopted_by_another_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let config = cfg(dir.path());
    let a = crate::Owner::new("a", "src");
    let mut w = TableWriter::open_or_create(&config, items_schema(true), a).await.unwrap();
    w.apply(&batch(vec![ins(item(1, "a", 1))], 100)).await.unwrap();
    crate::adopt(&config, &items_schema(true).id, &crate::Owner::new("b", "src")).await.unwrap();
    let err = w.apply(&batch(vec![ins(item(2, "b", 2))], 200)).await.unwrap_err();
    assert!(err.to_string().contains("belongs to pipeline \"b\""), "{err}");
    assert_eq!(rows_by_id(w.path()).await.len(), 1, "nothing written after the hand-over");
}

/// Many small commits (inserts, updates, deletes) → compaction: one file, the
/// same rows, the same change feed (the compaction commit adds no change
/// data and no data change), position and copy state untouched; later
/// batches apply on top; vacuum then deletes exactly the replaced files.
#[tokio::test]
async fn compaction_combines_small_files_without_changing_rows_feed_or_position_and_vacuum_removes_the_old_ones() {
    let dir = tempfile::tempdir().unwrap();
    let schema = items_schema(true);
    let mut w = open(dir.path(), &schema).await;
    let path = w.path().to_path_buf();
    for b in 0..30i64 {
        let mut changes: Vec<RowChange> = (0..10).map(|i| ins(item(b * 10 + i, "n", i))).collect();
        if b > 0 {
            changes.push(upd(item((b - 1) * 10, "n", 0), item((b - 1) * 10, "updated", 99)));
            changes.push(del(item((b - 1) * 10 + 1, "n", 1)));
        }
        w.apply(&batch(changes, 100 + b as u64)).await.unwrap();
    }
    let options =
        crate::CompactionOptions { target_file_bytes: 64 << 20, min_small_files: 4, max_bytes_per_run: 1 << 30 };
    let (files_before, rows_before) = (w.file_count(), rows_by_id(&path).await);
    let feed_before = brief(&read_changes(&path, 0, None).await.unwrap());
    let (committed, position) = (w.committed_version(), w.committed_position());
    assert!(files_before >= 30 && w.small_file_count(&options) == files_before, "{files_before} small files");

    let done = w.compact(&options).await.unwrap().expect("compacted");
    assert_eq!((done.files_removed, done.files_added, w.file_count()), (files_before, 1, 1));
    assert_eq!(done.rows, rows_before.len() as u64);
    let commit = actions(&path, done.delta_version);
    assert!(commit["add"].iter().chain(&commit["remove"]).all(|a| a["dataChange"] == json!(false)), "{commit:?}");
    assert_eq!(count(&commit, "cdc") + count(&commit, "txn"), 0, "no change data, no position");
    assert_eq!(commit["commitInfo"][0]["operation"], json!("OPTIMIZE"));
    assert_eq!(rows_by_id(&path).await, rows_before, "the same rows");
    let [compacted] = active_files(&path, done.delta_version).try_into().unwrap();
    let reader = deltalake::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        std::fs::File::open(path.join(&compacted)).unwrap(),
    )
    .unwrap()
    .build()
    .unwrap();
    let ids: Vec<i64> = reader
        .flat_map(|b| {
            use deltalake::arrow::array::AsArray;
            let b = b.unwrap();
            b.column_by_name("id").unwrap().as_primitive::<deltalake::arrow::datatypes::Int64Type>().values().to_vec()
        })
        .collect();
    assert!(ids.len() == rows_before.len() && ids.windows(2).all(|p| p[0] < p[1]), "written in key order: {ids:?}");
    assert_eq!(brief(&read_changes(&path, 0, None).await.unwrap()), feed_before, "the same change feed");
    assert!(w.compact(&options).await.unwrap().is_none(), "nothing left to combine");

    let mut reopened = open(dir.path(), &schema).await;
    assert_eq!((reopened.committed_version(), reopened.committed_position()), (committed, position));
    assert!(reopened.snapshot_complete(), "a compaction says nothing about the copy");
    reopened.apply(&batch(vec![upd(item(5, "n", 5), item(5, "after compaction", 6))], 200)).await.unwrap();
    assert_eq!(rows_by_id(&path).await[&5]["name"], json!("after compaction"));

    // Vacuum: refused below the table's retention property, then (property
    // lowered) a dry run lists the replaced files and deletes nothing.
    let week = crate::VacuumOptions { retention: std::time::Duration::from_secs(3600), dry_run: true };
    let err = crate::vacuum(&path, &week).await.unwrap_err().to_string();
    assert!(err.contains("delta.deletedFileRetentionDuration"), "{err}");
    assert!(reopened.keep_unreferenced_files_for(std::time::Duration::ZERO).await.unwrap());
    let now = crate::VacuumOptions { retention: std::time::Duration::ZERO, dry_run: true };
    let listed = crate::vacuum(&path, &now).await.unwrap();
    let replaced: Vec<&String> = listed.files.iter().filter(|f| !f.starts_with("_change_data")).collect();
    assert!(replaced.len() >= files_before, "the compacted files: {listed:?}");
    assert!(listed.files.iter().all(|f| path.join(f).exists()), "a dry run deletes nothing");
    let active = active_files(&path, reopened.delta_version());
    assert!(listed.files.iter().all(|f| !active.contains(f)), "no active file is listed");
    let deleted = crate::vacuum(&path, &crate::VacuumOptions { dry_run: false, ..now }).await.unwrap();
    assert_eq!(deleted.files, listed.files);
    assert!(deleted.files.iter().all(|f| !path.join(f).exists()) && deleted.bytes > 0);
    assert!(active.iter().all(|f| path.join(f).exists()), "every active file is kept");
    let mut after = rows_before.clone();
    after.get_mut(&5).unwrap().insert("name".into(), json!("after compaction"));
    after.get_mut(&5).unwrap().insert("qty".into(), json!(6));
    assert_eq!(rows_by_id(&path).await, after, "the table reads the same after the vacuum");
}

/// Log cleanup removes the commits whose commit info held the full position:
/// the table still knows its position (from the txn version in the
/// checkpoint) and that its copy is complete; it is not treated as new.
#[tokio::test]
async fn the_position_survives_log_cleanup_of_the_commits_that_named_it() {
    let dir = tempfile::tempdir().unwrap();
    let schema = items_schema(true);
    let mut config = cfg(dir.path());
    config.checkpoint_interval = 4;
    let owner = crate::Owner::new(APP, "mariadb:server_id=1,gtid_domain_id=0");
    let mut w = TableWriter::open_or_create(&config, schema.clone(), owner.clone()).await.unwrap();
    for b in 0..4u64 {
        w.apply(&batch(vec![ins(item(b as i64, "n", 1))], 100 + b)).await.unwrap();
    }
    let (version, path) = (w.delta_version(), w.path().to_path_buf());
    assert!(path.join(format!("_delta_log/{version:020}.checkpoint.parquet")).exists(), "checkpoint at {version}");
    drop(w);
    for v in 0..=version {
        std::fs::remove_file(path.join(format!("_delta_log/{v:020}.json"))).unwrap();
    }
    let reopened = TableWriter::open_or_create(&config, schema, owner).await.unwrap();
    assert_eq!(reopened.committed_version(), Some(pos(103).to_version().unwrap()));
    assert_eq!(reopened.committed_position(), Some(pos(103)), "the same point of the binlog");
    assert!(reopened.snapshot_complete(), "not a new table");
}

// Durability: what each commit path fsyncs before it returns (crate::durable).

/// Checks that commit `version` of `table` is durable by the syncs in
/// `synced` (those one call made, in order): each file its add / cdc actions
/// name, each directory holding them, then its log entry and `_delta_log`.
fn assert_commit_synced(table: &Path, version: i64, synced: &[std::path::PathBuf]) {
    let at = |p: &Path| synced.iter().position(|s| s == p);
    let last_at = |p: &Path| synced.iter().rposition(|s| s == p);
    let entry = table.join(format!("_delta_log/{version:020}.json"));
    let entry_at = at(&entry).unwrap_or_else(|| panic!("log entry {version} not synced; synced: {synced:?}"));
    let log_dir_at = last_at(&table.join("_delta_log")).expect("_delta_log synced");
    assert!(log_dir_at > entry_at, "_delta_log synced after its new entry: {synced:?}");
    let commit = actions(table, version);
    let files: Vec<&str> = ["add", "cdc"]
        .iter()
        .flat_map(|kind| commit.get(*kind).into_iter().flatten())
        .map(|a| a["path"].as_str().unwrap())
        .collect();
    for file in &files {
        let path = table.join(file);
        let file_at = at(&path).unwrap_or_else(|| panic!("{file} of commit {version} not synced: {synced:?}"));
        assert!(file_at < entry_at, "{file} synced before the log entry naming it");
        let mut dir = path.parent().unwrap();
        loop {
            let dir_at = at(dir).unwrap_or_else(|| panic!("{} not synced: {synced:?}", dir.display()));
            assert!(dir_at < entry_at, "{} synced before the log entry", dir.display());
            if dir == table {
                break;
            }
            dir = dir.parent().unwrap();
        }
    }
    let unique: std::collections::BTreeSet<_> = synced.iter().collect();
    assert_eq!(unique.len(), synced.len(), "each file and directory synced once: {synced:?}");
}

/// The syncs below `root` since `from` of them.
fn synced_since(root: &Path, from: usize) -> Vec<std::path::PathBuf> {
    crate::durable::record::below(root)[from..].to_vec()
}

#[tokio::test]
async fn a_new_table_is_synced_with_its_first_log_entry_and_the_directories_above_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap().join("lake");
    let w = TableWriter::open_or_create(&cfg(&root), items_schema(true), APP).await.unwrap();
    let synced = synced_since(&root, 0);
    assert_commit_synced(w.path(), 0, &synced);
    for d in [w.path(), &root.join("shop"), &root] {
        assert!(synced.iter().any(|s| s == d), "{} synced: {synced:?}", d.display());
    }
    let above = root.parent().unwrap();
    assert!(crate::durable::record::below(above).iter().any(|s| s == above), "the directory holding the root");
}

#[tokio::test]
async fn every_commit_path_syncs_its_files_directories_and_log_entry_before_it_returns() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let config = DeltaSinkConfig { target_file_rows: 4, checkpoint_interval: 1000, ..cfg(&root) };
    let mut w = TableWriter::open_or_create(&config, items_schema(true), APP).await.unwrap();
    let rows = |r: std::ops::Range<i64>| r.map(|i| item(i, "s", i)).collect::<Vec<_>>();

    // Snapshot: a full file committed on its own, then the rest with the position.
    let from = crate::durable::record::below(&root).len();
    let before = w.delta_version();
    let s = w.append_snapshot_chunk(rows(0..6), &pos(10), 5, true).await.unwrap();
    assert_eq!(s.commits, 2);
    let synced = synced_since(&root, from);
    let log_dir = w.path().join("_delta_log");
    let per_commit: Vec<&[std::path::PathBuf]> = synced.split_inclusive(|p| p == &log_dir).collect();
    assert_eq!(per_commit.len(), 2, "{synced:?}");
    for (version, synced) in (before + 1..).zip(per_commit) {
        assert_commit_synced(w.path(), version, synced);
    }

    // A batch that rewrites a file and writes change data (new _change_data directory).
    let from = crate::durable::record::below(&root).len();
    w.apply(&batch(vec![upd(item(1, "s", 1), item(1, "one", 1)), del(item(2, "s", 2)), ins(item(9, "n", 9))], 20))
        .await
        .unwrap();
    let commit = actions(w.path(), w.delta_version());
    assert!(count(&commit, "add") >= 1 && count(&commit, "cdc") == 1 && count(&commit, "remove") == 1, "{commit:?}");
    let synced = synced_since(&root, from);
    assert_commit_synced(w.path(), w.delta_version(), &synced);
    assert!(synced.iter().any(|p| p == &w.path().join("_change_data")));
    assert!(
        !synced.iter().any(|p| commit["remove"].iter().any(|r| p == &w.path().join(r["path"].as_str().unwrap()))),
        "removed files are not synced again"
    );

    // A position-only commit: nothing but its log entry.
    let from = crate::durable::record::below(&root).len();
    w.apply(&batch(vec![], 30)).await.unwrap();
    let synced = synced_since(&root, from);
    assert_commit_synced(w.path(), w.delta_version(), &synced);
    assert_eq!(synced.len(), 2, "the entry and _delta_log: {synced:?}");

    // A schema change that rewrites every data file (an added column with a default).
    let mut added = (*items_schema(true)).clone();
    added.columns.push(Column { source_type: "int".into(), ..col("extra", ColumnType::Int32) });
    let from = crate::durable::record::below(&root).len();
    let changes = w.change_schema(&added, &pos(40), &[("extra".into(), Value::Int(7))], &[]).await.unwrap();
    assert!(!changes.is_empty());
    assert!(count(&actions(w.path(), w.delta_version()), "add") >= 2);
    assert_commit_synced(w.path(), w.delta_version(), &synced_since(&root, from));

    // A reset: removes only.
    let from = crate::durable::record::below(&root).len();
    w.reset().await.unwrap();
    assert_commit_synced(w.path(), w.delta_version(), &synced_since(&root, from));
}

#[tokio::test]
async fn a_checkpoint_and_last_checkpoint_are_synced_before_the_commit_that_wrote_them_returns() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let config = DeltaSinkConfig { checkpoint_interval: 2, ..cfg(&root) };
    let mut w = TableWriter::open_or_create(&config, items_schema(true), APP).await.unwrap();
    w.apply(&batch(vec![ins(item(1, "a", 1))], 10)).await.unwrap();
    let from = crate::durable::record::below(&root).len();
    w.apply(&batch(vec![ins(item(2, "b", 2))], 20)).await.unwrap();
    assert_eq!(w.delta_version(), 2);
    let log = w.path().join("_delta_log");
    let checkpoint = log.join(format!("{:020}.checkpoint.parquet", 2));
    assert!(checkpoint.exists());
    let synced = synced_since(&root, from);
    let at = |p: &Path| {
        synced.iter().position(|s| s == p).unwrap_or_else(|| panic!("{} not synced: {synced:?}", p.display()))
    };
    let (checkpoint_at, last_at) = (at(&checkpoint), at(&log.join("_last_checkpoint")));
    let log_dir_at = synced.iter().rposition(|s| s == &log).unwrap();
    assert!(checkpoint_at < last_at && last_at < log_dir_at, "{synced:?}");
    assert!(at(&log.join(format!("{:020}.json", 2))) < checkpoint_at, "the commit first, then its checkpoint");
}
