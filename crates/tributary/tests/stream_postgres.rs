//! Streaming from a real PostgreSQL into Delta through pgoutput, checked with
//! an independent reader (delta-rs Python): final state and the exact change feed.

mod common;

use common::pg::*;
use common::*;
use serde_json::json;

fn row(pairs: &[(&str, serde_json::Value)]) -> serde_json::Map<String, serde_json::Value> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
}

#[test]
fn insert_update_delete_reach_the_mirror_and_the_change_feed_exactly() {
    let Some(server) = postgres() else { return };
    let Some(python) = python() else { return };
    let db = server.create_database().unwrap();
    sql(&db, "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(50), qty INT); INSERT INTO items VALUES (1,'a',1),(2,'b',2),(3,'c',3)");
    let dir = test_dir();
    let config = write_pg_config(dir.path(), &server, &db, "public.*", "");
    let path = table_path(dir.path(), "public", "items");
    let mut pipeline = Pipeline::start(&config);
    wait_committed(&mut pipeline, &path, 1);
    let after_snapshot = read(&python, &["txn", path.to_str().unwrap(), APP])["version"].as_i64().unwrap();
    let snapshot_rows = mirror_rows(&python, &path);
    assert_eq!(snapshot_rows.len(), 3, "{snapshot_rows:?}");

    change(&db, "INSERT INTO items VALUES (4,'d',4)");
    change(&db, "UPDATE items SET qty = 20 WHERE id = 2");
    let lsn = change(&db, "DELETE FROM items WHERE id = 3");
    wait_past(&mut pipeline, &path, lsn);
    assert!(pipeline.stop().success());

    let rows = mirror_rows(&python, &path);
    assert_eq!(
        rows,
        vec![
            row(&[("id", json!(1)), ("name", json!("a")), ("qty", json!(1))]),
            row(&[("id", json!(2)), ("name", json!("b")), ("qty", json!(20))]),
            row(&[("id", json!(4)), ("name", json!("d")), ("qty", json!(4))]),
        ]
    );
    let feed = change_feed(&python, &path, after_snapshot + 1);
    let mut changes: Vec<(String, i64, i64)> = feed
        .iter()
        .map(|r| {
            (r["_change_type"].as_str().unwrap().to_string(), r["id"].as_i64().unwrap(), r["qty"].as_i64().unwrap())
        })
        .collect();
    changes.sort();
    assert_eq!(
        changes,
        vec![
            ("delete".into(), 3, 3),
            ("insert".into(), 4, 4),
            ("update_postimage".into(), 2, 20),
            ("update_preimage".into(), 2, 2),
        ],
        "exactly the source's changes: {feed:?}"
    );
}
