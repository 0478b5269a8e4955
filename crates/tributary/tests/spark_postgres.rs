//! A PostgreSQL pipeline's Delta tables read through Spark 3.5 + Delta 3.x:
//! the mirror equals the source, the change feed of a scripted workload is
//! exactly the source's changes in `_commit_version` order (a multi-statement
//! transaction is one commit, a TRUNCATE shows as deletes), time travel shows
//! earlier states, and a 10,000-row load gives a change feed of 10,000 rows.

mod common;

use common::pg::*;
use common::*;
use serde_json::{json, Value as Json};
use tributary_testkit::postgres::PgDatabase;
use tributary_testkit::spark::Row;
use tributary_testkit::SparkVerifier;

/// `(id, name, qty)` of Spark rows.
fn items(rows: &[Row]) -> Vec<(i64, String, i64)> {
    rows.iter()
        .map(|r| (r["id"].as_i64().unwrap(), r["name"].as_str().unwrap().to_string(), r["qty"].as_i64().unwrap()))
        .collect()
}

/// The source table as the same tuples.
fn source_items(db: &PgDatabase<'_>) -> Vec<(i64, String, i64)> {
    pg_lines(db, "SELECT id, name, qty FROM items ORDER BY id")
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

#[test]
fn spark_reads_the_mirror_the_exact_change_feed_in_commit_order_and_earlier_versions() {
    let Some(server) = postgres() else { return };
    let Some(spark) = spark("the Spark pipeline tests") else { return };
    let db = server.create_database().unwrap();
    sql(&db, "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(50), qty INT); INSERT INTO items VALUES (1,'a',1),(2,'b',2),(3,'c',3)");
    let dir = test_dir();
    let config = write_pg_config(dir.path(), &server, &db, "public.items", "");
    let path = table_path(dir.path(), "public", "items");
    let mut pipeline = Pipeline::start(&config);
    wait_committed(&mut pipeline, &path, 1);
    let snapshot = latest_version(spark, &path);

    // One source transaction at a time, each committed before the next.
    let workload = [
        "INSERT INTO items VALUES (4,'d',4)",
        "UPDATE items SET qty = 20 WHERE id = 2",
        "DELETE FROM items WHERE id = 3",
        "UPDATE items SET name = 'dd', qty = 40 WHERE id = 4",
        "BEGIN; INSERT INTO items VALUES (5,'e',5); UPDATE items SET qty = 50 WHERE id = 5; DELETE FROM items WHERE id = 1; COMMIT",
    ];
    for statement in workload {
        let lsn = change(&db, statement);
        wait_past(&mut pipeline, &path, lsn);
    }
    let before_truncate = latest_version(spark, &path);
    let lsn = change(&db, "TRUNCATE items");
    wait_past(&mut pipeline, &path, lsn);
    let lsn = change(&db, "INSERT INTO items VALUES (6,'f',6), (7,'g',7)");
    wait_past(&mut pipeline, &path, lsn);
    assert!(pipeline.stop().success());

    // Mirror equals source.
    let mirror = spark.rows(&path, &["id"]).unwrap();
    assert_eq!(items(&mirror), source_items(&db));
    assert_eq!(items(&mirror), [(6, "f".into(), 6), (7, "g".into(), 7)]);
    assert_eq!(spark.count(&path).unwrap(), 2);

    // The change feed after the snapshot: exactly the workload, in commit order.
    let feed = spark.cdf(&path, snapshot + 1, Some(before_truncate), &["_commit_version", "id"]).unwrap();
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
    // Inside the last transaction row 5 is inserted then updated: Delta's feed
    // shows its net effect per commit or each step; accept only the exact steps.
    assert_eq!(
        changes.iter().map(|c| (c.0 - first, c.1, c.2, c.3, c.4)).collect::<Vec<_>>(),
        [
            (0, "insert", 4, "d", 4),
            (1, "update_preimage", 2, "b", 2),
            (1, "update_postimage", 2, "b", 20),
            (2, "delete", 3, "c", 3),
            (3, "update_preimage", 4, "d", 4),
            (3, "update_postimage", 4, "dd", 40),
            (4, "delete", 1, "a", 1),
            (4, "insert", 5, "e", 5),
            (4, "update_preimage", 5, "e", 5),
            (4, "update_postimage", 5, "e", 50),
        ],
        "one Delta commit per source transaction, nothing else: {feed:?}"
    );
    assert!(feed.iter().all(|r| r["_commit_timestamp"].is_string()));

    // The truncate: every remaining row deleted, in one commit, then the new inserts.
    let after = spark.cdf(&path, before_truncate + 1, None, &["_commit_version", "id"]).unwrap();
    let after: Vec<(i64, &str, i64)> = after
        .iter()
        .map(|r| {
            (r["_commit_version"].as_i64().unwrap(), r["_change_type"].as_str().unwrap(), r["id"].as_i64().unwrap())
        })
        .collect();
    let t = before_truncate + 1;
    assert_eq!(
        after,
        [(t, "delete", 2), (t, "delete", 4), (t, "delete", 5), (t + 1, "insert", 6), (t + 1, "insert", 7)],
        "TRUNCATE reads as deletes of every row"
    );

    // Time travel: the snapshot version shows the source as it was then.
    let then = spark.rows_at(&path, snapshot, &["id"]).unwrap();
    assert_eq!(items(&then), [(1, "a".into(), 1), (2, "b".into(), 2), (3, "c".into(), 3)]);
    let before_delete = spark.rows_at(&path, first + 1, &["id"]).unwrap();
    assert_eq!(items(&before_delete).iter().map(|r| r.0).collect::<Vec<_>>(), [1, 2, 3, 4]);
    let before_truncate_rows = spark.rows_at(&path, before_truncate, &["id"]).unwrap();
    assert_eq!(items(&before_truncate_rows), [(2, "b".into(), 20), (4, "dd".into(), 40), (5, "e".into(), 50)]);
    // History lists every commit, the CDF ones included.
    let history = spark.history(&path).unwrap();
    assert_eq!(history.last().unwrap()["version"], json!(before_truncate + 2));
}

#[test]
fn a_10000_row_load_gives_a_change_feed_of_10000_rows_in_spark() {
    let Some(server) = postgres() else { return };
    let Some(spark) = spark("the Spark pipeline tests") else { return };
    let db = server.create_database().unwrap();
    sql(&db, "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(50), qty INT)");
    let dir = test_dir();
    let config = write_pg_config(dir.path(), &server, &db, "public.items", "");
    let path = table_path(dir.path(), "public", "items");
    let mut pipeline = Pipeline::start(&config);
    wait_committed(&mut pipeline, &path, 1);
    let lsn = change(&db, "INSERT INTO items SELECT i, 'n' || i, i FROM generate_series(1, 10000) AS i");
    wait_past(&mut pipeline, &path, lsn);
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
