//! Streaming from a real MariaDB into Delta, checked with an independent
//! reader (delta-rs Python): final state and the exact change feed.

mod common;

use common::*;
use serde_json::json;

fn row(pairs: &[(&str, serde_json::Value)]) -> serde_json::Map<String, serde_json::Value> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
}

#[test]
fn insert_update_delete_reach_the_mirror_and_the_change_feed_exactly() {
    let Some(server) = mariadb() else { return };
    let Some(python) = python() else { return };
    let db = server.create_database().unwrap();
    db.exec("CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(50), qty INT)").unwrap();
    db.exec("INSERT INTO items VALUES (1,'a',1),(2,'b',2),(3,'c',3)").unwrap();
    let dir = test_dir();
    let config = write_config(dir.path(), &server, &format!("{}.*", db.name()), "");
    let path = table_path(dir.path(), db.name(), "items");
    let mut pipeline = Pipeline::start(&config);
    wait_committed(&mut pipeline, &path, master_version(&server));
    let after_snapshot = read(&python, &["txn", path.to_str().unwrap(), APP])["version"].as_i64().unwrap();

    db.exec("INSERT INTO items VALUES (4,'d',4)").unwrap();
    db.exec("UPDATE items SET qty = 20 WHERE id = 2").unwrap();
    db.exec("DELETE FROM items WHERE id = 3").unwrap();
    wait_committed(&mut pipeline, &path, master_version(&server));
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
    let changes: Vec<(String, i64, i64)> = feed
        .iter()
        .map(|r| {
            (r["_change_type"].as_str().unwrap().to_string(), r["id"].as_i64().unwrap(), r["qty"].as_i64().unwrap())
        })
        .collect();
    let mut sorted = changes.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        vec![
            ("delete".into(), 3, 3),
            ("insert".into(), 4, 4),
            ("update_postimage".into(), 2, 20),
            ("update_preimage".into(), 2, 2),
        ],
        "exactly the source's changes, no untouched rows: {feed:?}"
    );
}

#[test]
fn one_transaction_mixing_insert_update_delete_keeps_order_and_final_state() {
    let Some(server) = mariadb() else { return };
    let Some(python) = python() else { return };
    let db = server.create_database().unwrap();
    db.exec("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20))").unwrap();
    let dir = test_dir();
    let config = write_config(dir.path(), &server, &format!("{}.t", db.name()), "");
    let path = table_path(dir.path(), db.name(), "t");
    let mut pipeline = Pipeline::start(&config);
    wait_committed(&mut pipeline, &path, master_version(&server));
    db.exec(
        "START TRANSACTION; INSERT INTO t VALUES (1,'one'); UPDATE t SET v='uno' WHERE id=1; \
         INSERT INTO t VALUES (2,'two'); DELETE FROM t WHERE id=2; INSERT INTO t VALUES (2,'dos'); \
         UPDATE t SET v='eins' WHERE id=1; COMMIT;",
    )
    .unwrap();
    wait_committed(&mut pipeline, &path, master_version(&server));
    assert!(pipeline.stop().success());
    let rows = mirror_rows(&python, &path);
    assert_eq!(
        rows,
        vec![row(&[("id", json!(1)), ("v", json!("eins"))]), row(&[("id", json!(2)), ("v", json!("dos"))])]
    );
    let feed = change_feed(&python, &path, 0);
    let versions: std::collections::BTreeSet<i64> = feed
        .iter()
        .filter(|r| r["_change_type"] != "insert" || r["id"] == 1)
        .map(|r| r["_commit_version"].as_i64().unwrap())
        .collect();
    assert_eq!(versions.len(), 1, "one source transaction is one Delta commit: {feed:?}");
    assert_eq!(feed.iter().filter(|r| r["_change_type"] == "insert").count(), 3);
    assert_eq!(feed.iter().filter(|r| r["_change_type"] == "update_postimage").count(), 2);
    assert_eq!(feed.iter().filter(|r| r["_change_type"] == "delete").count(), 1);
}

#[test]
fn a_rolled_back_transaction_leaves_nothing() {
    let Some(server) = mariadb() else { return };
    let Some(python) = python() else { return };
    let db = server.create_database().unwrap();
    db.exec("CREATE TABLE t (id INT PRIMARY KEY, v INT)").unwrap();
    let dir = test_dir();
    let config = write_config(dir.path(), &server, &format!("{}.t", db.name()), "");
    let path = table_path(dir.path(), db.name(), "t");
    let mut pipeline = Pipeline::start(&config);
    wait_committed(&mut pipeline, &path, master_version(&server));
    db.exec("START TRANSACTION; INSERT INTO t VALUES (1,1),(2,2); ROLLBACK;").unwrap();
    db.exec("INSERT INTO t VALUES (3,3)").unwrap();
    wait_committed(&mut pipeline, &path, master_version(&server));
    assert!(pipeline.stop().success());
    assert_eq!(mirror_rows(&python, &path), vec![row(&[("id", json!(3)), ("v", json!(3))])]);
}

#[test]
fn a_150_row_bulk_insert_and_10_rapid_updates_are_captured_completely() {
    let Some(server) = mariadb() else { return };
    let Some(python) = python() else { return };
    let db = server.create_database().unwrap();
    db.exec("CREATE TABLE bulk (id INT PRIMARY KEY, v INT)").unwrap();
    let dir = test_dir();
    let config = write_config(dir.path(), &server, &format!("{}.bulk", db.name()), "");
    let path = table_path(dir.path(), db.name(), "bulk");
    let mut pipeline = Pipeline::start(&config);
    wait_committed(&mut pipeline, &path, master_version(&server));
    let values: Vec<String> = (1..=150).map(|i| format!("({i},{i})")).collect();
    db.exec(&format!("INSERT INTO bulk VALUES {}", values.join(","))).unwrap();
    for n in 1..=10 {
        db.exec(&format!("UPDATE bulk SET v = {} WHERE id = 7", 1000 + n)).unwrap();
    }
    wait_committed(&mut pipeline, &path, master_version(&server));
    assert!(pipeline.stop().success());
    let rows = mirror_rows(&python, &path);
    assert_eq!(rows.len(), 150);
    let seven = rows.iter().find(|r| r["id"] == 7).unwrap();
    assert_eq!(seven["v"], json!(1010), "ends on the last update");
    let feed = change_feed(&python, &path, 0);
    assert_eq!(feed.iter().filter(|r| r["_change_type"] == "insert").count(), 150);
    assert_eq!(feed.iter().filter(|r| r["_change_type"] == "update_postimage").count(), 10);
}

#[test]
fn nulls_a_28_kb_text_quotes_html_and_emoji_survive() {
    let Some(server) = mariadb() else { return };
    let Some(python) = python() else { return };
    let db = server.create_database().unwrap();
    db.exec("CREATE TABLE texts (id INT PRIMARY KEY, body TEXT, note VARCHAR(100), n INT) CHARACTER SET utf8mb4")
        .unwrap();
    let dir = test_dir();
    let config = write_config(dir.path(), &server, &format!("{}.texts", db.name()), "");
    let path = table_path(dir.path(), db.name(), "texts");
    let mut pipeline = Pipeline::start(&config);
    wait_committed(&mut pipeline, &path, master_version(&server));
    let big: String = "Lorem ipsum dolor sit amet 0123456789 ".repeat(28 * 1024 / 38 + 1);
    let tricky = r#"It's "quoted" <b>bold</b> &amp; \ back 🦀🎉 日本"#;
    db.exec(&format!(
        "INSERT INTO texts VALUES (1, '{big}', NULL, NULL), (2, NULL, '{}', 5)",
        tricky.replace('\\', "\\\\").replace('\'', "\\'")
    ))
    .unwrap();
    wait_committed(&mut pipeline, &path, master_version(&server));
    assert!(pipeline.stop().success());
    let rows = mirror_rows(&python, &path);
    assert_eq!(rows[0]["body"].as_str().unwrap(), big);
    assert!(big.len() >= 28 * 1024);
    assert_eq!(rows[0]["note"], json!(null));
    assert_eq!(rows[0]["n"], json!(null));
    assert_eq!(rows[1]["body"], json!(null));
    assert_eq!(rows[1]["note"].as_str().unwrap(), tricky);
}

#[test]
fn snapshot_never_starts_at_the_current_position_without_copying_existing_rows() {
    let Some(server) = mariadb() else { return };
    let Some(python) = python() else { return };
    let db = server.create_database().unwrap();
    db.exec("CREATE TABLE t (id INT PRIMARY KEY, v INT); INSERT INTO t VALUES (1,1),(2,2)").unwrap();
    let dir = test_dir();
    let config = write_config(dir.path(), &server, &format!("{}.t", db.name()), "");
    let text = std::fs::read_to_string(&config).unwrap().replace("include = [", "snapshot = \"never\"\ninclude = [");
    std::fs::write(&config, text).unwrap();
    let path = table_path(dir.path(), db.name(), "t");
    let mut pipeline = Pipeline::start(&config);
    wait_committed(&mut pipeline, &path, master_version(&server));
    db.exec("INSERT INTO t VALUES (3,3); UPDATE t SET v = 20 WHERE id = 2").unwrap();
    wait_committed(&mut pipeline, &path, master_version(&server));
    assert!(pipeline.stop().success());
    // Row 2 was never copied, so its update has nothing to replace: it lands as the row's first image.
    let rows = mirror_rows(&python, &path);
    assert_eq!(rows, vec![row(&[("id", json!(2)), ("v", json!(20))]), row(&[("id", json!(3)), ("v", json!(3))])]);
}
