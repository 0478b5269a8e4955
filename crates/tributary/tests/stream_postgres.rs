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
    // A clean stop tells the server what is durable: the slot is confirmed past the last change.
    let confirmed = db
        .exec(&format!(
            "SELECT confirmed_flush_lsn - '0/0'::pg_lsn FROM pg_replication_slots WHERE slot_name = '{}'",
            db.name()
        ))
        .unwrap();
    assert!(confirmed.trim().parse::<f64>().unwrap() as i64 > lsn, "confirmed {confirmed} <= {lsn}");

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

/// Counts the change feed rows of each `_change_type`.
fn count(feed: &[serde_json::Map<String, serde_json::Value>], change_type: &str) -> usize {
    feed.iter().filter(|r| r["_change_type"] == change_type).count()
}

/// The table's Delta version now (to read the change feed after it).
fn delta_version(python: &std::path::Path, path: &std::path::Path) -> i64 {
    read(python, &["txn", path.to_str().unwrap(), APP])["version"].as_i64().unwrap()
}

#[test]
fn one_transaction_mixing_insert_update_delete_keeps_order_and_final_state() {
    let Some(server) = postgres() else { return };
    let Some(python) = python() else { return };
    let db = server.create_database().unwrap();
    sql(&db, "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20))");
    let dir = test_dir();
    let config = write_pg_config(dir.path(), &server, &db, "public.t", "");
    let path = table_path(dir.path(), "public", "t");
    let mut pipeline = Pipeline::start(&config);
    wait_committed(&mut pipeline, &path, 1);
    let after_snapshot = delta_version(&python, &path);
    let lsn = change(
        &db,
        "BEGIN; INSERT INTO t VALUES (1,'one'); UPDATE t SET v='uno' WHERE id=1; \
         INSERT INTO t VALUES (2,'two'); DELETE FROM t WHERE id=2; INSERT INTO t VALUES (2,'dos'); \
         UPDATE t SET v='eins' WHERE id=1; COMMIT;",
    );
    wait_past(&mut pipeline, &path, lsn);
    assert!(pipeline.stop().success());
    assert_eq!(
        mirror_rows(&python, &path),
        vec![row(&[("id", json!(1)), ("v", json!("eins"))]), row(&[("id", json!(2)), ("v", json!("dos"))])]
    );
    let feed = change_feed(&python, &path, after_snapshot + 1);
    let versions: std::collections::BTreeSet<i64> =
        feed.iter().map(|r| r["_commit_version"].as_i64().unwrap()).collect();
    assert_eq!(versions.len(), 1, "one source transaction is one Delta commit: {feed:?}");
    assert_eq!(count(&feed, "insert"), 3, "{feed:?}");
    assert_eq!(count(&feed, "update_postimage"), 2, "{feed:?}");
    assert_eq!(count(&feed, "update_preimage"), 2, "{feed:?}");
    assert_eq!(count(&feed, "delete"), 1, "{feed:?}");
    // The order within the transaction decides the images: 'one' → 'uno' → 'eins', 'two' deleted.
    let images: std::collections::BTreeSet<(String, String)> = feed
        .iter()
        .filter(|r| r["_change_type"] != "insert")
        .map(|r| (r["_change_type"].as_str().unwrap().to_string(), r["v"].as_str().unwrap().to_string()))
        .collect();
    let expected: std::collections::BTreeSet<(String, String)> = [
        ("update_preimage", "one"),
        ("update_postimage", "uno"),
        ("update_preimage", "uno"),
        ("update_postimage", "eins"),
        ("delete", "two"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(images, expected, "{feed:?}");
}

#[test]
fn a_rolled_back_transaction_leaves_nothing() {
    let Some(server) = postgres() else { return };
    let Some(python) = python() else { return };
    let db = server.create_database().unwrap();
    sql(&db, "CREATE TABLE t (id INT PRIMARY KEY, v INT)");
    let dir = test_dir();
    let config = write_pg_config(dir.path(), &server, &db, "public.t", "");
    let path = table_path(dir.path(), "public", "t");
    let mut pipeline = Pipeline::start(&config);
    wait_committed(&mut pipeline, &path, 1);
    let after_snapshot = delta_version(&python, &path);
    sql(&db, "BEGIN; INSERT INTO t VALUES (1,1),(2,2); UPDATE t SET v = 5; ROLLBACK;");
    let lsn = change(&db, "INSERT INTO t VALUES (3,3)");
    wait_past(&mut pipeline, &path, lsn);
    assert!(pipeline.stop().success());
    assert_eq!(mirror_rows(&python, &path), vec![row(&[("id", json!(3)), ("v", json!(3))])]);
    let feed = change_feed(&python, &path, after_snapshot + 1);
    assert_eq!(feed.len(), 1, "only the committed insert: {feed:?}");
}

#[test]
fn a_150_row_bulk_insert_and_10_rapid_updates_are_captured_completely() {
    let Some(server) = postgres() else { return };
    let Some(python) = python() else { return };
    let db = server.create_database().unwrap();
    sql(&db, "CREATE TABLE bulk (id INT PRIMARY KEY, v INT)");
    let dir = test_dir();
    let config = write_pg_config(dir.path(), &server, &db, "public.bulk", "");
    let path = table_path(dir.path(), "public", "bulk");
    let mut pipeline = Pipeline::start(&config);
    wait_committed(&mut pipeline, &path, 1);
    let values: Vec<String> = (1..=150).map(|i| format!("({i},{i})")).collect();
    sql(&db, &format!("INSERT INTO bulk VALUES {}", values.join(",")));
    let mut lsn = 0;
    for n in 1..=10 {
        lsn = change(&db, &format!("UPDATE bulk SET v = {} WHERE id = 7", 1000 + n));
    }
    wait_past(&mut pipeline, &path, lsn);
    assert!(pipeline.stop().success());
    let rows = mirror_rows(&python, &path);
    assert_eq!(rows.len(), 150);
    let ids: Vec<i64> = rows.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, (1..=150).collect::<Vec<_>>());
    assert!(rows.iter().filter(|r| r["id"] != 7).all(|r| r["v"] == r["id"]));
    let seven = rows.iter().find(|r| r["id"] == 7).unwrap();
    assert_eq!(seven["v"], json!(1010), "ends on the last update");
    let feed = change_feed(&python, &path, 0);
    assert_eq!(count(&feed, "insert"), 150);
    assert_eq!(count(&feed, "update_postimage"), 10);
    let mut posts: Vec<i64> =
        feed.iter().filter(|r| r["_change_type"] == "update_postimage").map(|r| r["v"].as_i64().unwrap()).collect();
    posts.sort();
    assert_eq!(posts, (1001..=1010).collect::<Vec<_>>(), "every intermediate value once");
}

#[test]
fn nulls_a_28_kb_text_quotes_html_and_emoji_survive() {
    let Some(server) = postgres() else { return };
    let Some(python) = python() else { return };
    let db = server.create_database().unwrap();
    sql(&db, "CREATE TABLE texts (id INT PRIMARY KEY, body TEXT, note VARCHAR(100), n INT)");
    let dir = test_dir();
    let config = write_pg_config(dir.path(), &server, &db, "public.texts", "");
    let path = table_path(dir.path(), "public", "texts");
    let mut pipeline = Pipeline::start(&config);
    wait_committed(&mut pipeline, &path, 1);
    let big: String = "Lorem ipsum dolor sit amet 0123456789 ".repeat(28 * 1024 / 38 + 1);
    let tricky = r#"It's "quoted" <b>bold</b> &amp; \ back 🦀🎉 日本 ''"#;
    let lsn = change(
        &db,
        &format!(
            "INSERT INTO texts VALUES (1, '{big}', NULL, NULL), (2, NULL, '{}', 5), (3, '', 'null', 0)",
            tricky.replace('\'', "''")
        ),
    );
    wait_past(&mut pipeline, &path, lsn);
    assert!(pipeline.stop().success());
    let rows = mirror_rows(&python, &path);
    assert_eq!(rows.len(), 3);
    assert!(big.len() >= 28 * 1024);
    assert_eq!(rows[0]["body"].as_str().unwrap(), big);
    assert_eq!(rows[0]["note"], json!(null));
    assert_eq!(rows[0]["n"], json!(null));
    assert_eq!(rows[1]["body"], json!(null));
    assert_eq!(rows[1]["note"].as_str().unwrap(), tricky);
    assert_eq!(rows[1]["n"], json!(5));
    // An empty string and the text 'null' are values, not NULL.
    assert_eq!(rows[2]["body"], json!(""));
    assert_eq!(rows[2]["note"], json!("null"));
    assert_eq!(rows[2]["n"], json!(0));
}

/// 1,000 md5 digests: 32 KB that does not compress, stored out of line (STORAGE EXTERNAL).
const BIG_TOAST: &str = "(SELECT string_agg(md5(i::text), '') FROM generate_series(1, 1000) AS i)";

#[test]
fn unchanged_toast_values_survive_an_update_of_another_column_under_replica_identity_default_and_full() {
    let Some(server) = postgres() else { return };
    let Some(python) = python() else { return };
    let db = server.create_database().unwrap();
    for (table, identity) in [("toast_default", "DEFAULT"), ("toast_full", "FULL")] {
        sql(
            &db,
            &format!(
                "CREATE TABLE {table} (id INT PRIMARY KEY, big TEXT, n INT); \
                 ALTER TABLE {table} ALTER COLUMN big SET STORAGE EXTERNAL; \
                 ALTER TABLE {table} REPLICA IDENTITY {identity}; \
                 INSERT INTO {table} VALUES (1, {BIG_TOAST}, 1);"
            ),
        );
    }
    let big = sql(&db, &format!("SELECT {BIG_TOAST}")).trim().to_string();
    assert_eq!(big.len(), 32_000);
    // Out of line: the heap tuple is far smaller than the value.
    let toasted = sql(&db, "SELECT pg_column_size(big) FROM toast_default WHERE id = 1");
    assert_eq!(toasted.trim(), "32000", "stored uncompressed");
    let dir = test_dir();
    let config = write_pg_config(dir.path(), &server, &db, "public.toast_*", "");
    let paths = [table_path(dir.path(), "public", "toast_default"), table_path(dir.path(), "public", "toast_full")];
    let mut pipeline = Pipeline::start(&config);
    for path in &paths {
        wait_committed(&mut pipeline, path, 1);
    }
    let after_snapshot: Vec<i64> = paths.iter().map(|p| delta_version(&python, p)).collect();
    // Row 1 came from the snapshot; row 2 comes through the stream; then both get
    // an UPDATE of another column, which leaves the TOAST value out of the WAL.
    for table in ["toast_default", "toast_full"] {
        sql(&db, &format!("INSERT INTO {table} VALUES (2, {BIG_TOAST}, 2)"));
    }
    let lsn = change(
        &db,
        "UPDATE toast_default SET n = n + 10; UPDATE toast_full SET n = n + 10; \
         UPDATE toast_default SET n = n + 100 WHERE id = 2; UPDATE toast_full SET n = n + 100 WHERE id = 2;",
    );
    for path in &paths {
        wait_past(&mut pipeline, path, lsn);
    }
    assert!(pipeline.stop().success());

    for (path, from) in paths.iter().zip(after_snapshot) {
        let name = path.file_name().unwrap().to_str().unwrap();
        let rows = mirror_rows(&python, path);
        assert_eq!(rows.len(), 2, "{name}");
        for (row, n) in rows.iter().zip([11, 112]) {
            assert_eq!(row["n"], json!(n), "{name}");
            assert!(
                row["big"] == json!(big),
                "{name}: the TOAST value of row {} was lost: {:?}",
                row["id"],
                row["big"]
            );
        }
        let feed = change_feed(&python, path, from + 1);
        assert_eq!(count(&feed, "insert"), 1, "{name}: {feed:?}");
        assert_eq!(count(&feed, "update_postimage"), 3, "{name}");
        assert_eq!(count(&feed, "update_preimage"), 3, "{name}");
        for image in feed.iter().filter(|r| r["_change_type"] != "insert") {
            assert!(
                image["big"] == json!(big),
                "{name}: {} of row {} (n = {}) lacks the TOAST value: {:?}",
                image["_change_type"],
                image["id"],
                image["n"],
                image["big"].as_str().map(|s| s.len())
            );
        }
        let mut posts: Vec<i64> =
            feed.iter().filter(|r| r["_change_type"] == "update_postimage").map(|r| r["n"].as_i64().unwrap()).collect();
        posts.sort();
        assert_eq!(posts, [11, 12, 112], "{name}");
    }
}

#[test]
fn truncate_empties_the_mirror_and_the_change_feed_shows_deletes() {
    let Some(server) = postgres() else { return };
    let Some(python) = python() else { return };
    let db = server.create_database().unwrap();
    sql(&db, "CREATE TABLE t (id INT PRIMARY KEY, v INT); INSERT INTO t VALUES (1,1),(2,2)");
    let dir = test_dir();
    let config = write_pg_config(dir.path(), &server, &db, "public.t", "");
    let path = table_path(dir.path(), "public", "t");
    let mut pipeline = Pipeline::start(&config);
    wait_committed(&mut pipeline, &path, 1);
    let lsn = change(&db, "INSERT INTO t VALUES (3,3)");
    wait_past(&mut pipeline, &path, lsn);
    let before_truncate = delta_version(&python, &path);
    let lsn = change(&db, "TRUNCATE t");
    wait_past(&mut pipeline, &path, lsn);
    assert!(mirror_rows(&python, &path).is_empty(), "the mirror is emptied");
    let lsn = change(&db, "INSERT INTO t VALUES (9,9)");
    wait_past(&mut pipeline, &path, lsn);
    assert!(pipeline.stop().success());
    assert_eq!(mirror_rows(&python, &path), vec![row(&[("id", json!(9)), ("v", json!(9))])]);
    let feed = change_feed(&python, &path, before_truncate + 1);
    let mut deleted: Vec<(i64, i64)> = feed
        .iter()
        .filter(|r| r["_change_type"] == "delete")
        .map(|r| (r["id"].as_i64().unwrap(), r["v"].as_i64().unwrap()))
        .collect();
    deleted.sort();
    assert_eq!(deleted, [(1, 1), (2, 2), (3, 3)], "every row the truncate removed: {feed:?}");
    assert_eq!(count(&feed, "insert"), 1, "{feed:?}");
    assert_eq!(feed.len(), 4, "{feed:?}");
}

#[test]
fn on_an_idle_database_the_slot_advances_past_wal_written_by_other_tables() {
    let Some(server) = postgres() else { return };
    let db = server.create_database().unwrap();
    sql(&db, "CREATE TABLE watched (id INT PRIMARY KEY); CREATE TABLE other (id INT PRIMARY KEY, pad TEXT)");
    let dir = test_dir();
    let config = write_pg_config(dir.path(), &server, &db, "public.watched", "");
    let path = table_path(dir.path(), "public", "watched");
    let mut pipeline = Pipeline::start(&config);
    wait_committed(&mut pipeline, &path, 1);
    let confirmed = |db: &tributary_testkit::postgres::PgDatabase<'_>| -> i64 {
        let text = db
            .exec(&format!(
                "SELECT confirmed_flush_lsn - '0/0'::pg_lsn FROM pg_replication_slots WHERE slot_name = '{}'",
                db.name()
            ))
            .unwrap();
        text.trim().parse::<f64>().unwrap() as i64
    };
    let start = confirmed(&db);
    // Several MB of WAL nothing in the pipeline's tables: without heartbeats the slot would hold it forever.
    sql(&db, "INSERT INTO other SELECT i, repeat(md5(i::text), 20) FROM generate_series(1, 20000) AS i");
    sql(&db, "UPDATE other SET pad = 'x' WHERE id % 2 = 0");
    sql(&db, "VACUUM other");
    let written = lsn_now(&db);
    assert!(written - start > 4_000_000, "wrote {} bytes of WAL", written - start);
    wait_slot_confirmed(&db, db.name(), written);
    pipeline.assert_running();
    // The retained WAL follows: once a checkpoint has logged the running
    // transactions and the slot is confirmed past it, its restart point moves on.
    db.exec("CHECKPOINT").unwrap();
    let checkpoint = lsn_now(&db);
    wait_slot_confirmed(&db, db.name(), checkpoint);
    let started = std::time::Instant::now();
    loop {
        let text = db
            .exec(&format!(
                "SELECT restart_lsn - '0/0'::pg_lsn FROM pg_replication_slots WHERE slot_name = '{}'",
                db.name()
            ))
            .unwrap();
        let restart = text.trim().parse::<f64>().unwrap() as i64;
        if restart > start + 4_000_000 {
            break;
        }
        assert!(started.elapsed() < CATCH_UP, "restart_lsn {restart} stays near {start}: the slot holds the WAL");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    pipeline.assert_running();
    assert!(pipeline.stop().success());
    assert_eq!(slot_count(&db), 1, "the slot stays for the next run");
}

#[test]
fn a_table_added_to_the_include_list_is_snapshotted_then_streams_without_duplicates() {
    let Some(server) = postgres() else { return };
    let Some(python) = python() else { return };
    let db = server.create_database().unwrap();
    sql(&db, "CREATE TABLE first (id INT PRIMARY KEY, v INT); INSERT INTO first VALUES (1,1),(2,2)");
    let dir = test_dir();
    let config = write_pg_config(dir.path(), &server, &db, "public.first", "");
    let first = table_path(dir.path(), "public", "first");
    let second = table_path(dir.path(), "public", "second");
    let mut pipeline = Pipeline::start(&config);
    wait_committed(&mut pipeline, &first, 1);
    assert!(pipeline.stop().success());

    // While the pipeline is down: the first table changes, the second is created and filled.
    let first_changed = change(&db, "INSERT INTO first VALUES (3,3); UPDATE first SET v = 20 WHERE id = 2");
    sql(&db, "CREATE TABLE second (id INT PRIMARY KEY, v TEXT); INSERT INTO second SELECT i, 's' || i FROM generate_series(1, 50) AS i");
    // Published before the restart, so the slot also streams these changes of
    // the second table: its snapshot already holds them, they must not come twice.
    sql(&db, &format!("ALTER PUBLICATION \"{}\" ADD TABLE second", db.name()));
    sql(&db, "INSERT INTO second VALUES (51, 's51'); UPDATE second SET v = 'changed' WHERE id = 5; DELETE FROM second WHERE id = 6");
    let lsn = lsn_now(&db);
    set_include(&config, &["public.first", "public.second"]);
    let mut pipeline = Pipeline::start(&config);
    wait_past(&mut pipeline, &first, first_changed);
    wait_committed(&mut pipeline, &second, lsn);
    let snapshot = delta_version(&python, &second);
    // The temporary slot of the added table's snapshot is gone.
    wait_slot_count(&db, 1);
    let lsn = change(&db, "INSERT INTO second VALUES (52, 's52'); UPDATE second SET v = 'again' WHERE id = 5; UPDATE first SET v = 30 WHERE id = 3");
    wait_past(&mut pipeline, &second, lsn);
    wait_past(&mut pipeline, &first, lsn);
    assert!(pipeline.stop().success());

    let source: Vec<String> = pg_lines(&db, "SELECT id, v FROM second ORDER BY id");
    let mirror: Vec<String> =
        mirror_rows(&python, &second).iter().map(|r| format!("{}\t{}", r["id"], r["v"].as_str().unwrap())).collect();
    assert_eq!(mirror, source);
    assert_eq!(mirror.len(), 51);
    assert_eq!(
        mirror_rows(&python, &first),
        vec![
            row(&[("id", json!(1)), ("v", json!(1))]),
            row(&[("id", json!(2)), ("v", json!(20))]),
            row(&[("id", json!(3)), ("v", json!(30))]),
        ]
    );
    // The second table's feed: the snapshot copy, then only what came after it.
    let feed = change_feed(&python, &second, 0);
    let inserted: Vec<i64> = {
        let mut ids = feed_ids(&feed, "insert");
        ids.sort();
        ids
    };
    let expected: Vec<i64> = (1..=52).filter(|&i| i != 6).collect();
    assert_eq!(inserted, expected, "each row inserted once: {feed:?}");
    assert_eq!(count(&feed, "delete"), 0, "{feed:?}");
    let after = change_feed(&python, &second, snapshot + 1);
    assert_eq!(count(&after, "insert"), 1, "{after:?}");
    assert_eq!(count(&after, "update_postimage"), 1, "{after:?}");
}

#[test]
fn a_table_created_under_the_include_pattern_while_stopped_is_picked_up_on_restart() {
    let Some(server) = postgres() else { return };
    let Some(python) = python() else { return };
    let db = server.create_database().unwrap();
    sql(&db, "CREATE TABLE a (id INT PRIMARY KEY, v INT); INSERT INTO a VALUES (1,1)");
    let dir = test_dir();
    let config = write_pg_config(dir.path(), &server, &db, "public.*", "");
    let a = table_path(dir.path(), "public", "a");
    let b = table_path(dir.path(), "public", "b");
    let mut pipeline = Pipeline::start(&config);
    wait_committed(&mut pipeline, &a, 1);
    assert!(pipeline.stop().success());
    sql(&db, "CREATE TABLE b (id INT PRIMARY KEY, v INT); INSERT INTO b SELECT i, i FROM generate_series(1, 20) AS i");
    let lsn = lsn_now(&db);
    let mut pipeline = Pipeline::start(&config);
    wait_committed(&mut pipeline, &b, lsn);
    let lsn = change(&db, "INSERT INTO b VALUES (21, 21); DELETE FROM b WHERE id = 1; INSERT INTO a VALUES (2,2)");
    wait_past(&mut pipeline, &b, lsn);
    wait_past(&mut pipeline, &a, lsn);
    assert!(pipeline.stop().success());
    let ids: Vec<i64> = mirror_rows(&python, &b).iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, (2..=21).collect::<Vec<_>>());
    assert_eq!(mirror_rows(&python, &a).len(), 2);
    let feed = change_feed(&python, &b, 0);
    assert_eq!(count(&feed, "insert"), 21, "{feed:?}");
    assert_eq!(count(&feed, "delete"), 1, "{feed:?}");
    assert_eq!(slot_count(&db), 1);
}

#[test]
fn a_primary_key_change_moves_the_row_with_its_unchanged_toast_value() {
    let Some(server) = postgres() else { return };
    let Some(python) = python() else { return };
    let db = server.create_database().unwrap();
    for (table, identity) in [("key_default", "DEFAULT"), ("key_full", "FULL")] {
        sql(
            &db,
            &format!(
                "CREATE TABLE {table} (id INT PRIMARY KEY, big TEXT, n INT); \
                 ALTER TABLE {table} ALTER COLUMN big SET STORAGE EXTERNAL; \
                 ALTER TABLE {table} REPLICA IDENTITY {identity}; \
                 INSERT INTO {table} VALUES (1, {BIG_TOAST}, 1), (2, 'small', 2);"
            ),
        );
    }
    let big = sql(&db, &format!("SELECT {BIG_TOAST}")).trim().to_string();
    let dir = test_dir();
    let config = write_pg_config(dir.path(), &server, &db, "public.key_*", "");
    let paths = [table_path(dir.path(), "public", "key_default"), table_path(dir.path(), "public", "key_full")];
    let mut pipeline = Pipeline::start(&config);
    for path in &paths {
        wait_committed(&mut pipeline, path, 1);
    }
    let after_snapshot: Vec<i64> = paths.iter().map(|p| delta_version(&python, p)).collect();
    // The new key's row carries the TOAST value as "unchanged"; the old key's row is gone.
    let lsn = change(
        &db,
        "UPDATE key_default SET id = 10 WHERE id = 1; UPDATE key_full SET id = 10 WHERE id = 1; \
         UPDATE key_default SET id = 20, n = 22 WHERE id = 2; UPDATE key_full SET id = 20, n = 22 WHERE id = 2;",
    );
    for path in &paths {
        wait_past(&mut pipeline, path, lsn);
    }
    assert!(pipeline.stop().success());
    for (path, from) in paths.iter().zip(after_snapshot) {
        let name = path.file_name().unwrap().to_str().unwrap();
        let rows = mirror_rows(&python, path);
        let ids: Vec<i64> = rows.iter().map(|r| r["id"].as_i64().unwrap()).collect();
        assert_eq!(ids, [10, 20], "{name}");
        assert!(rows[0]["big"] == json!(big), "{name}: the moved row lost its TOAST value: {:?}", rows[0]["big"]);
        assert_eq!(rows[0]["n"], json!(1), "{name}");
        assert_eq!(rows[1]["big"], json!("small"), "{name}");
        assert_eq!(rows[1]["n"], json!(22), "{name}");
        // Every image of the moved rows carries its full values.
        let feed = change_feed(&python, path, from + 1);
        assert!(!feed.is_empty(), "{name}");
        for image in &feed {
            let want = if image["n"] == json!(1) { json!(big) } else { json!("small") };
            assert!(
                image["big"] == want,
                "{name}: {} of id {} lacks its value: {:?}",
                image["_change_type"],
                image["id"],
                image["big"].as_str().map(|s| s.len())
            );
        }
    }
}

#[test]
fn a_dropped_slot_is_recreated_and_every_table_copied_again_to_equal_the_source() {
    let Some(server) = postgres() else { return };
    let Some(python) = python() else { return };
    let db = server.create_database().unwrap();
    sql(&db, "CREATE TABLE t (id INT PRIMARY KEY, v INT); INSERT INTO t VALUES (1,1),(2,2),(3,3)");
    let dir = test_dir();
    let config = write_pg_config(dir.path(), &server, &db, "public.t", "");
    let path = table_path(dir.path(), "public", "t");
    let mut pipeline = Pipeline::start(&config);
    wait_committed(&mut pipeline, &path, 1);
    let lsn = change(&db, "INSERT INTO t VALUES (4,4)");
    wait_past(&mut pipeline, &path, lsn);
    assert!(pipeline.stop().success());
    // The slot is gone (dropped by an operator, or invalidated): the WAL in between is lost to us.
    db.exec(&format!("SELECT pg_drop_replication_slot('{}')", db.name())).unwrap();
    sql(&db, "UPDATE t SET v = 20 WHERE id = 2; DELETE FROM t WHERE id = 3; INSERT INTO t VALUES (5,5)");
    let mut pipeline = Pipeline::start(&config);
    let lsn = change(&db, "UPDATE t SET v = 40 WHERE id = 4");
    wait_past(&mut pipeline, &path, lsn);
    assert!(pipeline.stop().success());
    let mirror: Vec<String> = mirror_rows(&python, &path).iter().map(|r| format!("{}\t{}", r["id"], r["v"])).collect();
    assert_eq!(mirror, pg_lines(&db, "SELECT id, v FROM t ORDER BY id"));
    assert_eq!(mirror, ["1\t1", "2\t20", "4\t40", "5\t5"]);
    assert_eq!(slot_count(&db), 1);
}

#[test]
fn tables_with_generated_and_dropped_columns_stream() {
    let Some(server) = postgres() else { return };
    let Some(python) = python() else { return };
    let db = server.create_database().unwrap();
    sql(
        &db,
        "CREATE TABLE g (id INT PRIMARY KEY, gone INT, a INT, doubled INT GENERATED ALWAYS AS (a * 2) STORED); \
         ALTER TABLE g DROP COLUMN gone; INSERT INTO g (id, a) VALUES (1, 1)",
    );
    let dir = test_dir();
    let config = write_pg_config(dir.path(), &server, &db, "public.g", "");
    let path = table_path(dir.path(), "public", "g");
    let mut pipeline = Pipeline::start(&config);
    wait_committed(&mut pipeline, &path, 1);
    let lsn = change(&db, "INSERT INTO g (id, a) VALUES (2, 5); UPDATE g SET a = 7 WHERE id = 1");
    wait_past(&mut pipeline, &path, lsn);
    assert!(pipeline.stop().success());
    let rows = mirror_rows(&python, &path);
    let got: Vec<(i64, i64)> = rows.iter().map(|r| (r["id"].as_i64().unwrap(), r["a"].as_i64().unwrap())).collect();
    assert_eq!(got, [(1, 7), (2, 5)], "{rows:?}");
    assert!(rows.iter().all(|r| !r.contains_key("gone")), "{rows:?}");
    // pgoutput sends no generated columns (PostgreSQL 18 can, with publish_generated_columns,
    // which preflight refuses): they are not mirrored.
    assert!(rows.iter().all(|r| !r.contains_key("doubled")), "{rows:?}");
}

#[test]
fn a_table_left_out_while_the_slot_moved_on_is_copied_again_when_it_is_captured_again() {
    let Some(server) = postgres() else { return };
    let Some(python) = python() else { return };
    let db = server.create_database().unwrap();
    sql(&db, "CREATE TABLE a (id INT PRIMARY KEY, v INT); INSERT INTO a VALUES (1,1)");
    sql(&db, "CREATE TABLE b (id INT PRIMARY KEY, v TEXT); INSERT INTO b SELECT i, 'b' || i FROM generate_series(1, 20) AS i");
    let dir = test_dir();
    let config = write_pg_config(dir.path(), &server, &db, "public.*", "");
    set_include(&config, &["public.a", "public.b"]);
    let (a, b) = (table_path(dir.path(), "public", "a"), table_path(dir.path(), "public", "b"));
    let mut pipeline = Pipeline::start(&config);
    wait_committed(&mut pipeline, &b, 1);
    assert!(pipeline.stop().success());

    // b is left out: it leaves the publication, and the slot moves on past its changes.
    set_include(&config, &["public.a"]);
    let mut pipeline = Pipeline::start(&config);
    let published = |db: &tributary_testkit::postgres::PgDatabase<'_>| {
        pg_lines(db, &format!("SELECT tablename FROM pg_publication_tables WHERE pubname = '{}' ORDER BY 1", db.name()))
    };
    let lsn = change(&db, "INSERT INTO b VALUES (21, 'while out'); UPDATE b SET v = 'changed while out' WHERE id = 3; DELETE FROM b WHERE id = 4; UPDATE a SET v = 2 WHERE id = 1");
    wait_past(&mut pipeline, &a, lsn);
    wait_slot_confirmed(&db, db.name(), lsn);
    assert_eq!(published(&db), vec!["a".to_string()], "b left the publication");
    assert!(pipeline.stop().success());

    // Captured again: its changes while out were never streamed, so it is copied again.
    set_include(&config, &["public.a", "public.b"]);
    let mut pipeline = Pipeline::start(&config);
    let lsn = change(&db, "INSERT INTO b VALUES (22, 'after'); UPDATE a SET v = 3 WHERE id = 1");
    wait_past(&mut pipeline, &b, lsn);
    wait_past(&mut pipeline, &a, lsn);
    assert!(pipeline.log_text().contains("were not in the publication"), "the re-copy is logged");
    assert!(pipeline.stop().success());
    let source = pg_lines(&db, "SELECT id, v FROM b ORDER BY id");
    let mirror: Vec<String> =
        mirror_rows(&python, &b).iter().map(|r| format!("{}\t{}", r["id"], r["v"].as_str().unwrap())).collect();
    assert_eq!(mirror, source, "b = source, including what changed while it was left out");
    assert_eq!(mirror_rows(&python, &a), vec![row(&[("id", json!(1)), ("v", json!(3))])]);
}
