//! Deletion vectors written by Tributary, read by independent readers: a table
//! made by Tributary's writer gets the `deletionVectors` feature and then rows
//! of its data files marked deleted (inline, in a `.bin` file, and a file's
//! inline vector replaced by a larger one in a file), each commit with the
//! change-data file of the deleted rows, the last version also checkpointed.
//! Spark 3.5 + Delta 3.x and delta-rs' Python `deltalake` must see the table
//! without the marked rows, every version of it, and the deletions in the
//! change feed.

use crate::commit::{cdc_action, CommitKind, CommitNote};
use crate::deletion_vector::{self, Placement};
use crate::deletion_vector_commit::{commit_deleted_rows, enable_deletion_vectors};
use crate::files::{cdc_file_name, read_file, write_file};
use crate::schema::TableLayout;
use crate::tests::{actions, batch, delta_reader, independent_reader, ins, item, items_schema, open, pos, APP};
use deltalake::arrow::array::{AsArray, RecordBatch, StringArray, UInt32Array};
use deltalake::arrow::compute::{concat_batches, take_record_batch};
use deltalake::arrow::datatypes::Int64Type;
use deltalake::kernel::Action;
use roaring::RoaringTreemap;
use serde_json::{json, Value as J};
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

/// The rows of the data file `rel_path`, conformed to the table's layout, as one batch.
pub(crate) fn data_file(dir: &Path, rel_path: &str, layout: &TableLayout) -> RecordBatch {
    let batches: Vec<RecordBatch> = read_file(&crate::storage::TableFiles::Local(dir.to_path_buf()), rel_path)
        .unwrap()
        .iter()
        .map(|b| crate::encode::conform(b, &layout.arrow).unwrap())
        .collect();
    concat_batches(&layout.arrow, &batches).unwrap()
}

/// The row indexes of `ids` in `file`.
fn indexes_of(file: &RecordBatch, ids: &[i64]) -> RoaringTreemap {
    let column = file.column_by_name("id").unwrap().as_primitive::<Int64Type>();
    let found: RoaringTreemap =
        (0..file.num_rows()).filter(|&i| ids.contains(&column.value(i))).map(|i| i as u64).collect();
    assert_eq!(found.len(), ids.len() as u64, "every id is in the file");
    found
}

/// A change-data file holding the rows at `rows` of `file` as `delete`; its `cdc` action.
pub(crate) fn delete_cdc(dir: &Path, layout: &TableLayout, file: &RecordBatch, rows: &RoaringTreemap) -> Action {
    let indexes = UInt32Array::from_iter_values(rows.iter().map(|r| r as u32));
    let deleted = take_record_batch(file, &indexes).unwrap();
    let mut columns = deleted.columns().to_vec();
    columns.push(Arc::new(StringArray::from(vec!["delete"; deleted.num_rows()])));
    let cdc = RecordBatch::try_new(layout.cdc_arrow.clone(), columns).unwrap();
    let written = write_file(
        &crate::storage::TableFiles::Local(dir.to_path_buf()),
        cdc_file_name(),
        layout,
        &layout.cdc_arrow,
        &[cdc],
        false,
    )
    .unwrap();
    cdc_action(&written.rel_path, written.size)
}

fn note(at: u64) -> CommitNote {
    CommitNote::new(APP, CommitKind::Batch, Some(&pos(at)), Some(pos(at).to_version().unwrap()))
}

fn ids(rows: &[serde_json::Map<String, J>]) -> Vec<i64> {
    rows.iter().map(|r| r["id"].as_i64().unwrap()).collect()
}

#[tokio::test]
async fn spark_and_delta_rs_skip_rows_marked_in_inline_and_file_deletion_vectors() {
    let spark = tributary_testkit::require(
        "Spark verifier (pyspark + Delta jars; `make setup`)",
        tributary_testkit::SparkVerifier::shared(),
    );
    let Some(spark) = spark else { return };
    let dir = tempfile::tempdir().unwrap();
    let schema = items_schema(true);
    let layout = TableLayout::new(schema.clone());
    let mut w = open(dir.path(), &schema).await;
    w.apply(&batch((1..=10).map(|i| ins(item(i, &format!("n{i}"), i))).collect(), 100)).await.unwrap();
    w.apply(&batch((11..=20).map(|i| ins(item(i, &format!("n{i}"), i))).collect(), 101)).await.unwrap();
    let path = w.path().to_path_buf();
    drop(w);
    let file_a = actions(&path, 1)["add"][0]["path"].as_str().unwrap().to_string();
    let file_b = actions(&path, 2)["add"][0]["path"].as_str().unwrap().to_string();
    let (rows_a, rows_b) = (data_file(&path, &file_a, &layout), data_file(&path, &file_b, &layout));

    let mut table = crate::table::open_existing(&path).await.unwrap();
    assert_eq!(enable_deletion_vectors(&mut table, APP).await.unwrap(), Some(3));
    assert_eq!(enable_deletion_vectors(&mut table, APP).await.unwrap(), None, "once is enough");
    let upgrade = actions(&path, 3);
    assert_eq!(
        upgrade["protocol"][0],
        json!({"minReaderVersion": 3, "minWriterVersion": 7, "readerFeatures": ["deletionVectors"],
            "writerFeatures": ["appendOnly", "changeDataFeed", "checkConstraints", "deletionVectors",
                "generatedColumns", "invariants"]})
    );
    assert_eq!(upgrade["metaData"][0]["configuration"]["delta.enableDeletionVectors"], "true");
    assert_eq!(upgrade["metaData"][0]["configuration"]["delta.enableChangeDataFeed"], "true");

    // v4: ids 2 and 5 of file A, inline.
    let marks = indexes_of(&rows_a, &[2, 5]);
    let cdc = delete_cdc(&path, &layout, &rows_a, &marks);
    let v4 = commit_deleted_rows(&mut table, &[(file_a.clone(), marks)], Placement::Inline, note(200), vec![cdc]).await;
    assert_eq!(v4.unwrap(), 4);
    // v5: ids 11, 12, 13 and 20 of file B, in a file.
    let marks = indexes_of(&rows_b, &[11, 12, 13, 20]);
    let cdc = delete_cdc(&path, &layout, &rows_b, &marks);
    let v5 = commit_deleted_rows(&mut table, &[(file_b.clone(), marks)], Placement::File, note(201), vec![cdc]).await;
    assert_eq!(v5.unwrap(), 5);
    // v6: id 7 of file A (and 2 again): file A's inline vector is replaced by one in a file.
    let marks = indexes_of(&rows_a, &[7, 2]);
    let cdc = delete_cdc(&path, &layout, &rows_a, &indexes_of(&rows_a, &[7]));
    let v6 = commit_deleted_rows(&mut table, &[(file_a.clone(), marks)], Placement::File, note(202), vec![cdc]).await;
    assert_eq!(v6.unwrap(), 6);

    // The log: remove + add of the same path, the old vector on the remove.
    let (c4, c5, c6) = (actions(&path, 4), actions(&path, 5), actions(&path, 6));
    assert_eq!((c4["remove"][0]["path"].as_str(), c4["add"][0]["path"].as_str()), (Some(&*file_a), Some(&*file_a)));
    assert_eq!(c4["remove"][0].get("deletionVector"), None);
    let inline = &c4["add"][0]["deletionVector"];
    assert_eq!((inline["storageType"].as_str(), inline["cardinality"].as_i64()), (Some("i"), Some(2)));
    assert_eq!(inline.get("offset"), None);
    let stats: J = serde_json::from_str(c4["add"][0]["stats"].as_str().unwrap()).unwrap();
    assert_eq!((stats["numRecords"].as_i64(), stats["tightBounds"].as_bool()), (Some(10), Some(false)));
    let in_file = &c5["add"][0]["deletionVector"];
    assert_eq!((in_file["storageType"].as_str(), in_file["offset"].as_i64()), (Some("u"), Some(1)));
    assert_eq!(in_file["cardinality"], 4);
    assert_eq!(c5["add"][0]["dataChange"], true);
    assert_eq!(&c6["remove"][0]["deletionVector"], inline, "the remove names the vector it replaces");
    assert_eq!(
        (
            c6["add"][0]["deletionVector"]["storageType"].as_str(),
            c6["add"][0]["deletionVector"]["cardinality"].as_i64()
        ),
        (Some("u"), Some(3))
    );
    let bins: Vec<String> = std::fs::read_dir(&path)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("deletion_vector_") && n.ends_with(".bin"))
        .collect();
    assert_eq!(bins.len(), 2, "{bins:?}");
    // Our reader sees what we wrote.
    let final_a: deltalake::kernel::DeletionVectorDescriptor =
        serde_json::from_value(c6["add"][0]["deletionVector"].clone()).unwrap();
    assert_eq!(deletion_vector::read(&table, &final_a).await.unwrap(), indexes_of(&rows_a, &[2, 5, 7]));

    // The latest version is read from a checkpoint: its `add` rows carry the vectors too.
    crate::commit::checkpoint_and_cleanup(&table).await.unwrap();
    assert!(path.join("_delta_log/00000000000000000006.checkpoint.parquet").exists());

    // Spark.
    let gone = [2, 5, 7, 11, 12, 13, 20];
    let expected: Vec<i64> = (1..=20).filter(|i| !gone.contains(i)).collect();
    assert_eq!(spark.count(&path).unwrap(), 13);
    assert_eq!(ids(&spark.rows(&path, &["id"]).unwrap()), expected);
    let counts: Vec<u64> = (3..=6).map(|v| spark.count_at(&path, v).unwrap()).collect();
    assert_eq!(counts, [20, 18, 14, 13]);
    let ids_v4 = ids(&spark.rows_at(&path, 4, &["id"]).unwrap());
    assert_eq!(ids_v4, (1..=20).filter(|i| ![2, 5].contains(i)).collect::<Vec<_>>());
    let names: BTreeSet<String> = spark
        .sql(&format!("SELECT name FROM delta.`{}` WHERE id BETWEEN 1 AND 8", path.display()))
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["n1", "n3", "n4", "n6", "n8"].map(String::from).into());
    let feed: Vec<(i64, String, i64)> = spark
        .cdf(&path, 4, None, &["_commit_version", "id"])
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["_commit_version"].as_i64().unwrap(),
                r["_change_type"].as_str().unwrap().into(),
                r["id"].as_i64().unwrap(),
            )
        })
        .collect();
    let d = |v, id| (v, "delete".to_string(), id);
    assert_eq!(feed, [d(4, 2), d(4, 5), d(5, 11), d(5, 12), d(5, 13), d(5, 20), d(6, 7)]);

    // delta-rs (Python deltalake): its DataFusion scan and its change feed.
    if let Some(python) = independent_reader() {
        let theirs = delta_reader(&python, &["scan", path.to_str().unwrap()]);
        assert_eq!(theirs["version"], 6);
        let mut their_ids: Vec<i64> =
            theirs["rows"].as_array().unwrap().iter().map(|r| r["id"].as_i64().unwrap()).collect();
        their_ids.sort();
        assert_eq!(their_ids, expected);
        let their_feed = delta_reader(&python, &["cdf", path.to_str().unwrap(), "4"]);
        let mut their_feed: Vec<(i64, String, i64)> = their_feed["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["_commit_version"].as_i64().unwrap(),
                    r["_change_type"].as_str().unwrap().into(),
                    r["id"].as_i64().unwrap(),
                )
            })
            .collect();
        their_feed.sort();
        assert_eq!(their_feed, feed);
    }
}
