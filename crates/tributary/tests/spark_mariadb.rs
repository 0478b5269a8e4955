//! The pipeline's Delta tables read through Spark 3.5 + Delta 3.x, the way
//! users read them: the mirror equals the source, the change feed of a
//! scripted workload is exactly the source's changes in `_commit_version`
//! order, time travel shows earlier states, and a 10,000-row load gives a
//! change feed of 10,000 rows. One Spark JVM serves this whole test binary.

mod common;

use common::alltypes::{assert_same, create_table, server_rows, ROW_MAX, ROW_MIN, TYPES};
use common::*;
use serde_json::{json, Value as Json};
use tributary_testkit::spark::Row;
use tributary_testkit::SparkVerifier;

/// `(id, name, qty)` of Spark rows.
fn items(rows: &[Row]) -> Vec<(i64, String, i64)> {
    rows.iter()
        .map(|r| (r["id"].as_i64().unwrap(), r["name"].as_str().unwrap().to_string(), r["qty"].as_i64().unwrap()))
        .collect()
}

/// The source table as the same tuples.
fn source_items(server: &tributary_testkit::MariaDb, db: &str) -> Vec<(i64, String, i64)> {
    source_lines(server, &format!("SELECT id, name, qty FROM `{db}`.items ORDER BY id"))
        .iter()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f[0].parse().unwrap(), f[1].to_string(), f[2].parse().unwrap())
        })
        .collect()
}

fn latest_version(spark: &SparkVerifier, path: &std::path::Path) -> i64 {
    spark.history(path).unwrap().last().unwrap()["version"].as_i64().unwrap()
}

/// An `items (id, name, qty)` table holding `rows` (SQL values, maybe none),
/// copied by a running pipeline.
struct StreamedItems<'a> {
    db: tributary_testkit::TestDatabase<'a>,
    _dir: tributary_testkit::TestDir,
    path: std::path::PathBuf,
    pipeline: Pipeline,
}

fn stream_items<'a>(server: &'a tributary_testkit::MariaDb, rows: &str) -> StreamedItems<'a> {
    let db = server.create_database().unwrap();
    db.exec("CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(50), qty INT)").unwrap();
    if !rows.is_empty() {
        db.exec(&format!("INSERT INTO items VALUES {rows}")).unwrap();
    }
    let dir = test_dir();
    let (_, path, pipeline) = start_copied(dir.path(), server, &format!("{}.items", db.name()), db.name(), "items");
    StreamedItems { db, _dir: dir, path, pipeline }
}

#[test]
fn spark_reads_the_mirror_the_exact_change_feed_in_commit_order_and_earlier_versions() {
    let Some(server) = mariadb() else { return };
    let Some(spark) = spark("the Spark pipeline tests") else { return };
    let StreamedItems { db, _dir, path, mut pipeline } = stream_items(&server, "(1,'a',1),(2,'b',2),(3,'c',3)");
    let snapshot = latest_version(spark, &path);

    // One source transaction at a time, each committed before the next.
    let workload = [
        "INSERT INTO items VALUES (4,'d',4)",
        "UPDATE items SET qty = 20 WHERE id = 2",
        "DELETE FROM items WHERE id = 3",
        "UPDATE items SET name = 'dd', qty = 40 WHERE id = 4",
    ];
    for statement in workload {
        db.exec(statement).unwrap();
        wait_committed(&mut pipeline, &path, master_version(&server));
    }
    assert!(pipeline.stop().success());

    // Mirror equals source.
    let mirror = spark.rows(&path, &["id"]).unwrap();
    assert_eq!(items(&mirror), source_items(&server, db.name()));
    assert_eq!(spark.count(&path).unwrap(), 3);

    // The change feed after the snapshot: exactly the workload, in commit order.
    let feed = spark.cdf(&path, snapshot + 1, None, &["_commit_version", "id"]).unwrap();
    let rank = |t: &str| ["delete", "insert", "update_preimage", "update_postimage"].iter().position(|x| *x == t);
    let mut changes: Vec<(i64, &str, i64, &str, i64)> = feed
        .iter()
        .map(|r| {
            (
                r["_commit_version"].as_i64().unwrap(),
                r["_change_type"].as_str().unwrap(),
                r["id"].as_i64().unwrap(),
                r["name"].as_str().unwrap(),
                r["qty"].as_i64().unwrap(),
            )
        })
        .collect();
    changes.sort_by_key(|c| (c.0, c.2, rank(c.1)));
    let versions: Vec<i64> = changes.iter().map(|c| c.0).collect();
    let first = versions[0];
    assert!(first > snapshot, "{versions:?}");
    assert_eq!(
        changes.iter().map(|c| (c.0 - first, c.1, c.2, c.3, c.4)).collect::<Vec<_>>(),
        [
            (0, "insert", 4, "d", 4),
            (1, "update_preimage", 2, "b", 2),
            (1, "update_postimage", 2, "b", 20),
            (2, "delete", 3, "c", 3),
            (3, "update_preimage", 4, "d", 4),
            (3, "update_postimage", 4, "dd", 40),
        ],
        "one Delta commit per source transaction, nothing else: {feed:?}"
    );
    assert!(feed.iter().all(|r| r["_commit_timestamp"].is_string()));

    // Time travel: the snapshot version shows the source as it was then.
    let then = spark.rows_at(&path, snapshot, &["id"]).unwrap();
    assert_eq!(items(&then), [(1, "a".into(), 1), (2, "b".into(), 2), (3, "c".into(), 3)]);
    let before_delete = spark.rows_at(&path, first + 1, &["id"]).unwrap();
    assert_eq!(items(&before_delete).iter().map(|r| r.0).collect::<Vec<_>>(), [1, 2, 3, 4]);
    // History lists every commit, the CDF ones included.
    let history = spark.history(&path).unwrap();
    assert_eq!(history.last().unwrap()["version"], json!(first + 3));
}

#[test]
fn a_10000_row_load_gives_a_change_feed_of_10000_rows_in_spark() {
    let Some(server) = mariadb() else { return };
    let Some(spark) = spark("the Spark pipeline tests") else { return };
    let StreamedItems { db, _dir, path, mut pipeline } = stream_items(&server, "");
    db.exec("INSERT INTO items SELECT seq, CONCAT('n', seq), seq FROM seq_1_to_10000").unwrap();
    wait_committed(&mut pipeline, &path, master_version(&server));
    assert!(pipeline.stop().success());

    assert_eq!(spark.count(&path).unwrap(), 10_000);
    assert_eq!(spark.cdf_count(&path, 0, None).unwrap(), 10_000);
    let stats = spark
        .sql(&format!(
            "SELECT _change_type, count(*) AS n, count(DISTINCT id) AS ids, sum(qty) AS total \
             FROM table_changes_by_path('{}', 0) GROUP BY _change_type",
            path.display()
        ))
        .unwrap();
    assert_eq!(stats.len(), 1, "{stats:?}");
    assert_eq!(
        Json::Object(stats[0].clone()),
        json!({"_change_type": "insert", "n": 10_000, "ids": 10_000, "total": 50_005_000})
    );
}

#[test]
fn every_mariadb_type_reads_in_spark_with_the_documented_type_and_value() {
    let Some(server) = mariadb() else { return };
    let Some(spark) = spark("the Spark pipeline tests") else { return };
    let db = server.create_database().unwrap();
    create_table(&db);
    db.exec(&format!("INSERT INTO alltypes VALUES {ROW_MIN}, {ROW_MAX}")).unwrap();
    db.exec("INSERT INTO alltypes (id) VALUES (3)").unwrap();
    let dir = test_dir();
    let config = write_config(dir.path(), &server, &format!("{}.alltypes", db.name()), "");
    let path = table_path(dir.path(), db.name(), "alltypes");
    let mut pipeline = Pipeline::start(&config);
    wait_committed(&mut pipeline, &path, master_version(&server));
    assert!(pipeline.stop().success());

    let schema = spark.schema(&path).unwrap();
    for case in TYPES {
        let field =
            schema.iter().find(|f| f.name == case.name).unwrap_or_else(|| panic!("{} in {schema:?}", case.name));
        assert_eq!(field.data_type, case.spark_type, "Spark type of {}", case.name);
    }
    let expected = server_rows(&server, db.name());
    let rows = spark.rows(&path, &["id"]).unwrap();
    assert_eq!(rows.len(), expected.len());
    for (row, server_row) in rows.iter().zip(&expected) {
        for (case, want) in TYPES.iter().zip(server_row) {
            assert_same("Spark", case.name, &row[case.name], want, &row["id"]);
        }
    }
}

#[test]
fn five_updates_of_one_key_in_one_transaction_keep_their_order_in_the_change_sequence() {
    let Some(server) = mariadb() else { return };
    let Some(spark) = spark("the Spark pipeline tests") else { return };
    let StreamedItems { db, _dir, path, mut pipeline } = stream_items(&server, "(1,'a',0),(2,'b',0)");
    let snapshot = latest_version(spark, &path);

    // Quantities in an order that neither sorting by value nor by name reproduces.
    let qty = [5, 3, 9, 1, 7];
    let mut txn = String::from("START TRANSACTION; UPDATE items SET qty = 100 WHERE id = 2;");
    for (i, q) in qty.iter().enumerate() {
        txn.push_str(&format!("UPDATE items SET qty = {q}, name = 'v{i}' WHERE id = 1;"));
    }
    txn.push_str("COMMIT");
    db.exec(&txn).unwrap();
    wait_committed(&mut pipeline, &path, master_version(&server));
    assert!(pipeline.stop().success());

    let feed = spark.cdf(&path, snapshot + 1, None, &["_tributary_change_seq"]).unwrap();
    let post: Vec<(i64, i64, i64)> = feed
        .iter()
        .filter(|r| r["_change_type"] == "update_postimage" && r["id"] == 1)
        .map(|r| {
            (
                r["_commit_version"].as_i64().unwrap(),
                r["_tributary_change_seq"].as_i64().unwrap(),
                r["qty"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(post.len(), 5, "{feed:?}");
    assert!(post.iter().all(|p| p.0 == post[0].0), "one commit holds the transaction: {post:?}");
    // The other key's update came first in the transaction: index 0.
    assert_eq!(post.iter().map(|p| p.1).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
    assert_eq!(post.iter().map(|p| p.2).collect::<Vec<_>>(), qty, "the sequence reproduces the source order");
    let mirror = spark.rows(&path, &["id"]).unwrap();
    assert_eq!(mirror[0]["qty"], 7);
    assert_eq!(mirror[0]["_tributary_change_seq"], 5);
}

#[test]
fn spark_vacuum_and_a_users_delete_work_on_a_streaming_table_and_streaming_goes_on() {
    let Some(server) = mariadb() else { return };
    let Some(spark) = spark("the Spark pipeline tests") else { return };
    let StreamedItems { db, _dir, path, mut pipeline } =
        stream_items(&server, "(1,'a',1),(2,'b',2),(3,'c',3),(4,'d',4),(5,'e',5)");
    db.exec("UPDATE items SET qty = 30 WHERE id = 3").unwrap();
    wait_committed(&mut pipeline, &path, master_version(&server));

    // Maintenance and a user's DELETE from Spark while the pipeline runs: Tributary's
    // protocol and properties must not make Spark refuse them.
    let table = format!("delta.`{}`", path.display());
    spark.sql(&format!("VACUUM {table} RETAIN 168 HOURS")).unwrap();
    spark.sql(&format!("DELETE FROM {table} WHERE id <= 2")).unwrap();
    let deleted_at = latest_version(spark, &path);

    // The pipeline's next batch was planned before the DELETE: it is re-planned on top of it.
    db.exec("UPDATE items SET qty = 50 WHERE id = 5").unwrap();
    wait_committed(&mut pipeline, &path, master_version(&server));
    pipeline.assert_running();
    assert!(pipeline.stop().success());
    let mirror = spark.rows(&path, &["id"]).unwrap();
    assert_eq!(
        items(&mirror),
        [(3, "c".into(), 30), (4, "d".into(), 4), (5, "e".into(), 50)],
        "the user's delete stays"
    );
    let feed = spark.cdf(&path, deleted_at + 1, None, &["id"]).unwrap();
    let changes: Vec<(&str, i64, i64)> = feed
        .iter()
        .map(|r| (r["_change_type"].as_str().unwrap(), r["id"].as_i64().unwrap(), r["qty"].as_i64().unwrap()))
        .collect();
    assert_eq!(changes.len(), 2, "{changes:?}");
    assert!(
        changes.contains(&("update_preimage", 5, 5)) && changes.contains(&("update_postimage", 5, 50)),
        "{changes:?}"
    );
}
