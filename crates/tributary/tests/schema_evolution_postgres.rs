//! Schema changes on a real PostgreSQL flow into the Delta tables without
//! stopping the pipeline (docs/schema-evolution.md): the mirror equals the
//! source after each scenario, read with the independent reader and Spark.

mod common;

use common::pg::*;
use common::*;
use serde_json::Value as Json;

/// The source rows of `columns` in the same form (psql prints NULL as empty; we ask for 'null').
fn source_lines(db: &tributary_testkit::postgres::PgDatabase<'_>, table: &str, columns: &[&str]) -> Vec<String> {
    let select = columns.iter().map(|c| format!("COALESCE({c}::text, 'null')")).collect::<Vec<_>>().join(", ");
    pg_lines(db, &format!("SELECT {select} FROM {table} ORDER BY id"))
}

#[test]
fn add_drop_widen_and_retype_follow_the_source_and_spark_reads_the_whole_feed() {
    let Some(server) = postgres() else { return };
    let Some(python) = python() else { return };
    let db = server.create_database().unwrap();
    sql(&db, "CREATE TABLE t (id INT PRIMARY KEY, qty INT, name VARCHAR(50), note TEXT); INSERT INTO t VALUES (1, 1, 'a', 'n1'), (2, 2, 'b', 'n2')");
    let dir = test_dir();
    let config = write_pg_config(dir.path(), &server, &db, "public.t", "");
    let path = table_path(dir.path(), "public", "t");
    let mut pipeline = Pipeline::start(&config);
    wait_committed(&mut pipeline, &path, 1);

    // ADD COLUMN with a default while inserts continue from another session:
    // older rows read the default.
    change(&db, "INSERT INTO t VALUES (3, 3, 'c', 'n3')");
    let stop = std::sync::atomic::AtomicBool::new(false);
    let inserted = std::thread::scope(|s| {
        let writer = s.spawn(|| {
            let mut id = 100;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                sql(&db, &format!("INSERT INTO t (id, qty, name) VALUES ({id}, {id}, 'w{id}')"));
                id += 1;
            }
            id - 100
        });
        std::thread::sleep(std::time::Duration::from_millis(300));
        // `added_on`'s default is a stable expression: evaluated once, at the
        // ALTER, as the older rows' value (PostgreSQL's missing value).
        change(
            &db,
            "ALTER TABLE t ADD COLUMN flag INT NOT NULL DEFAULT 5, ADD COLUMN extra TEXT, \
             ADD COLUMN added_on date DEFAULT (now() AT TIME ZONE 'UTC')::date",
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        writer.join().unwrap()
    });
    assert!(inserted >= 2, "inserts ran during the ALTER: {inserted}");
    change(&db, "INSERT INTO t (id, qty, name, note, flag, extra) VALUES (4, 4, 'd', 'n4', 7, 'x')");
    // DROP COLUMN: kept in Delta, NULL from then on.
    change(&db, "ALTER TABLE t DROP COLUMN note");
    change(&db, "INSERT INTO t (id, qty, name) VALUES (5, 5, 'e')");
    // INT -> BIGINT, then a value above 2^31; VARCHAR(50) -> VARCHAR(200) with 150 characters.
    change(&db, "ALTER TABLE t ALTER COLUMN qty TYPE BIGINT, ALTER COLUMN name TYPE VARCHAR(200)");
    let lsn = change(&db, &format!("INSERT INTO t (id, qty, name) VALUES (6, 3000000000, '{}')", "y".repeat(150)));
    wait_past(&mut pipeline, &path, lsn);
    assert!(pipeline.stop().success());
    let log = pipeline_log(dir.path());
    assert!(log.contains("schema change applied"), "{log}");

    let columns = ["id", "qty", "name", "flag", "extra", "added_on"];
    assert_eq!(mirror_lines(&python, &path, &columns), source_lines(&db, "t", &columns));
    assert!(!mirror_lines(&python, &path, &["added_on"])[0].contains("null"), "older rows read the missing value");
    let status = tributary(&["status", "--config", config.to_str().unwrap(), "--format", "json"]);
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    let status: Json = serde_json::from_slice(&status.stdout).unwrap();
    let listed: Vec<String> = status[0]["schema_changes"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["changes"].as_array().unwrap().iter().map(|x| x.as_str().unwrap().to_string()))
        .collect();
    assert_eq!(
        listed,
        [
            "add column flag integer",
            "add column extra text",
            "add column added_on date",
            "drop column note (kept, NULL from now on)",
            "change qty integer -> bigint",
            "change name character varying(50) -> character varying(200)"
        ],
        "{status}"
    );
    let notes = mirror_lines(&python, &path, &["id", "note"]);
    assert_eq!(&notes[..6], ["1\tn1", "2\tn2", "3\tn3", "4\tn4", "5\tnull", "6\tnull"], "dropped column kept");
    assert!(notes[6..].iter().all(|n| n.ends_with("\tnull")), "the concurrent inserts left note NULL: {notes:?}");

    let Some(spark) = spark("the Spark schema tests") else { return };
    let schema = spark.schema(&path).unwrap();
    let types: Vec<(String, String)> = schema.iter().map(|f| (f.name.clone(), f.data_type.clone())).collect();
    assert!(types.contains(&("qty".into(), "bigint".into())), "{types:?}");
    assert!(types.contains(&("flag".into(), "bigint".into())), "{types:?}");
    let rows = spark.rows(&path, &["id"]).unwrap();
    assert_eq!(rows.len(), 6 + inserted as usize);
    assert_eq!(rows[5]["qty"].as_i64(), Some(3_000_000_000));
    assert_eq!(rows[0]["flag"].as_i64(), Some(5));
    // INT -> BIGINT changed no Delta type (every integer is `long`): Spark
    // reads the change feed over the whole range.
    let feed = spark.cdf(&path, 0, None, &["_commit_version", "id"]).unwrap();
    let inserts = feed_ids(&feed, "insert");
    let expected: Vec<i64> = (1..=6).chain(100..100 + inserted).collect();
    let mut sorted = inserts.clone();
    sorted.sort();
    assert_eq!(sorted, expected, "every insert once, across the changes: {feed:?}");
    let six = feed.iter().find(|r| r["id"] == 6).unwrap();
    assert_eq!(six["qty"].as_i64(), Some(3_000_000_000));
}

#[test]
fn several_changes_in_one_transaction_and_a_sequence_of_five() {
    let Some(server) = postgres() else { return };
    let Some(python) = python() else { return };
    let db = server.create_database().unwrap();
    sql(&db, "CREATE TABLE t (id INT PRIMARY KEY, a INT); INSERT INTO t VALUES (1, 1)");
    let dir = test_dir();
    let config = write_pg_config(dir.path(), &server, &db, "public.t", "");
    let path = table_path(dir.path(), "public", "t");
    let mut pipeline = Pipeline::start(&config);
    wait_committed(&mut pipeline, &path, 1);
    change(
        &db,
        "BEGIN; INSERT INTO t VALUES (2, 2); ALTER TABLE t ADD COLUMN b TEXT; INSERT INTO t VALUES (3, 3, 'three'); \
         ALTER TABLE t ADD COLUMN c INT; UPDATE t SET c = 30 WHERE id = 3; INSERT INTO t VALUES (4, 4, 'four', 40); COMMIT",
    );
    for (i, ddl) in [
        "ALTER TABLE t ADD COLUMN d NUMERIC(10,2)",
        "ALTER TABLE t ALTER COLUMN c TYPE BIGINT",
        "ALTER TABLE t DROP COLUMN b",
        "ALTER TABLE t ADD COLUMN e BOOLEAN DEFAULT true",
        "ALTER TABLE t ALTER COLUMN a TYPE BIGINT",
    ]
    .iter()
    .enumerate()
    {
        change(&db, ddl);
        change(&db, &format!("INSERT INTO t (id, a) VALUES ({}, {})", 10 + i, 100 + i));
    }
    let lsn = change(&db, "UPDATE t SET d = 12.5 WHERE id = 14");
    wait_past(&mut pipeline, &path, lsn);
    assert!(pipeline.stop().success());
    let columns = ["id", "a", "c", "d", "e"];
    assert_eq!(mirror_lines(&python, &path, &columns), source_lines(&db, "t", &columns));
    let Some(spark) = spark("the Spark schema tests") else { return };
    let feed = spark.cdf(&path, 0, None, &["_commit_version", "id"]).unwrap();
    let inserts = feed_ids(&feed, "insert");
    assert_eq!(inserts, [1, 2, 3, 4, 10, 11, 12, 13, 14], "the whole feed, across every change: {feed:?}");
}

/// DECIMAL precision up changes the Delta type: the data files are rewritten,
/// and Spark 3.5 + Delta 3.x read the change feed from the widening commit on
/// (docs/schema-evolution.md).
#[test]
fn a_decimal_widening_rewrites_and_spark_reads_the_feed_from_it() {
    let Some(server) = postgres() else { return };
    let Some(python) = python() else { return };
    let db = server.create_database().unwrap();
    sql(&db, "CREATE TABLE t (id INT PRIMARY KEY, d NUMERIC(10,2)); INSERT INTO t VALUES (1, 12345678.91)");
    let dir = test_dir();
    let config = write_pg_config(dir.path(), &server, &db, "public.t", "");
    let path = table_path(dir.path(), "public", "t");
    let mut pipeline = Pipeline::start(&config);
    wait_committed(&mut pipeline, &path, 1);
    change(&db, "ALTER TABLE t ALTER COLUMN d TYPE NUMERIC(14,2)");
    let lsn = change(&db, "INSERT INTO t VALUES (2, 123456789012.34)");
    wait_past(&mut pipeline, &path, lsn);
    assert!(pipeline.stop().success());
    assert_eq!(mirror_lines(&python, &path, &["id", "d"]), source_lines(&db, "t", &["id", "d"]));
    let widened = commit_with(&path, "widened");
    let Some(spark) = spark("the Spark schema tests") else { return };
    let refusal = spark.cdf(&path, 0, None, &["_commit_version", "id"]).unwrap_err().to_string();
    assert!(refusal.contains("DELTA_CHANGE_DATA_FEED_INCOMPATIBLE"), "{refusal}");
    let feed = spark.cdf(&path, widened, None, &["_commit_version", "id"]).unwrap();
    assert_eq!(feed.len(), 1, "{feed:?}");
    assert_eq!((&feed[0]["id"], &feed[0]["d"]), (&Json::from(2), &Json::from("123456789012.34")), "{feed:?}");
}

#[test]
fn an_incompatible_change_stops_only_that_table_naming_column_and_types() {
    let Some(server) = postgres() else { return };
    let Some(python) = python() else { return };
    let db = server.create_database().unwrap();
    sql(&db, "CREATE TABLE bad (id INT PRIMARY KEY, code TEXT); CREATE TABLE good (id INT PRIMARY KEY, v INT)");
    sql(&db, "INSERT INTO bad VALUES (1, '10'); INSERT INTO good VALUES (1, 1)");
    let dir = test_dir();
    let config = write_pg_config(dir.path(), &server, &db, "public.*", "");
    let (bad, good) = (table_path(dir.path(), "public", "bad"), table_path(dir.path(), "public", "good"));
    let mut pipeline = Pipeline::start(&config);
    wait_committed(&mut pipeline, &good, 1);
    change(&db, "ALTER TABLE bad ALTER COLUMN code TYPE INT USING code::int");
    change(&db, "INSERT INTO bad VALUES (2, 20)");
    let lsn = change(&db, "INSERT INTO good VALUES (2, 2)");
    wait_past(&mut pipeline, &good, lsn);
    pipeline.assert_running();
    let log = pipeline.log_text();
    let line =
        log.lines().find(|l| l.contains("table stopped")).unwrap_or_else(|| panic!("no stop in the log:\n{log}"));
    assert!(
        line.contains("code") && line.contains("text") && line.contains("integer") && line.contains("re-snapshot"),
        "{line}"
    );
    assert!(pipeline.stop().success());
    assert_eq!(mirror_lines(&python, &good, &["id", "v"]), ["1\t1", "2\t2"]);
    assert_eq!(mirror_lines(&python, &bad, &["id", "code"]), ["1\t10"], "nothing after the change");

    // Map the column to string and restart: TEXT -> INT keeps the Delta
    // column `string` (nothing rewritten), the slot still holds the changes
    // after the table's position, and Spark reads the whole feed.
    let text = std::fs::read_to_string(&config).unwrap();
    let text =
        text.replace("checkpoint_interval = 5", "checkpoint_interval = 5\nincompatible_type_changes = \"string\"");
    std::fs::write(&config, text).unwrap();
    let mut pipeline = Pipeline::start(&config);
    let lsn = change(&db, "INSERT INTO bad VALUES (3, 30)");
    wait_past(&mut pipeline, &bad, lsn);
    assert!(pipeline.stop().success());
    assert_eq!(mirror_lines(&python, &bad, &["id", "code"]), ["1\t10", "2\t20", "3\t30"]);
    let (code, json, stderr) = validate_json(&config, &["--table", "public.bad"]);
    assert_eq!(code, 0, "the text column validates against the source: {json:#} {stderr}");
    let Some(spark) = spark("the Spark schema tests") else { return };
    let types: Vec<(String, String)> =
        spark.schema(&bad).unwrap().iter().map(|f| (f.name.clone(), f.data_type.clone())).collect();
    assert!(types.contains(&("code".into(), "string".into())), "{types:?}");
    let feed = spark.cdf(&bad, 0, None, &["_commit_version", "id"]).unwrap();
    let codes: Vec<&Json> = feed.iter().filter(|r| r["_change_type"] == "insert").map(|r| &r["code"]).collect();
    assert_eq!(codes, [&Json::from("10"), &Json::from("20"), &Json::from("30")], "{feed:?}");
}

#[test]
fn a_restart_from_before_several_changes_decodes_each_row_with_its_schema() {
    let Some(server) = postgres() else { return };
    let Some(python) = python() else { return };
    let db = server.create_database().unwrap();
    sql(&db, "CREATE TABLE t (id INT PRIMARY KEY, a INT); INSERT INTO t VALUES (1, 1)");
    let dir = test_dir();
    let config = write_pg_config(dir.path(), &server, &db, "public.t", "");
    let path = table_path(dir.path(), "public", "t");
    let mut pipeline = Pipeline::start(&config);
    wait_committed(&mut pipeline, &path, 1);
    assert!(pipeline.stop().success());
    // While the pipeline is down: rows under three schemas.
    sql(&db, "INSERT INTO t VALUES (2, 2)");
    sql(&db, "ALTER TABLE t ADD COLUMN b TEXT");
    sql(&db, "INSERT INTO t VALUES (3, 3, 'three')");
    sql(&db, "ALTER TABLE t DROP COLUMN a");
    sql(&db, "INSERT INTO t VALUES (4, 'four')");
    let mut pipeline = Pipeline::start(&config);
    let lsn = change(&db, "INSERT INTO t VALUES (5, 'five')");
    wait_past(&mut pipeline, &path, lsn);
    assert!(pipeline.stop().success());
    assert_eq!(
        mirror_lines(&python, &path, &["id", "a", "b"]),
        ["1\t1\tnull", "2\t2\tnull", "3\t3\tthree", "4\tnull\tfour", "5\tnull\tfive"]
    );
    assert_eq!(mirror_lines(&python, &path, &["id", "b"]), source_lines(&db, "t", &["id", "b"]));

    // Added and dropped columns: Spark reads the whole change feed at once.
    let Some(spark) = spark("the Spark schema tests") else { return };
    let feed = spark.cdf(&path, 0, None, &["_commit_version", "id"]).unwrap();
    let inserts: Vec<(i64, Json)> = feed
        .iter()
        .filter(|r| r["_change_type"] == "insert")
        .map(|r| (r["id"].as_i64().unwrap(), r["b"].clone()))
        .collect();
    let expected = [(1, Json::Null), (2, Json::Null), (3, "three".into()), (4, "four".into()), (5, "five".into())];
    assert_eq!(inserts, expected, "the snapshot row, then each insert under its schema: {feed:?}");
}

/// The version of the first commit whose Tributary note lists a change of `kind`.
fn commit_with(table: &std::path::Path, kind: &str) -> i64 {
    let needle = format!("\"change\":\"{kind}\"");
    let mut version = 0;
    loop {
        let file = table.join(format!("_delta_log/{version:020}.json"));
        let text = std::fs::read_to_string(&file).unwrap_or_else(|_| panic!("no commit with a {kind} change"));
        if text.contains(&needle) {
            return version;
        }
        version += 1;
    }
}

/// The text of every pipeline log under `dir`.
fn pipeline_log(dir: &std::path::Path) -> String {
    let mut text = String::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().unwrap().to_string_lossy().starts_with("pipeline-") {
            text.push_str(&std::fs::read_to_string(path).unwrap());
        }
    }
    text
}

#[test]
fn a_table_created_while_streaming_gets_a_delta_table_with_all_its_rows() {
    let Some(server) = postgres() else { return };
    let Some(python) = python() else { return };
    let db = server.create_database().unwrap();
    sql(&db, "CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t VALUES (1)");
    // New tables reach the stream only through a publication of all tables (needs a superuser).
    db.exec(&format!("CREATE PUBLICATION {} FOR ALL TABLES", db.name())).unwrap();
    let dir = test_dir();
    let config = write_pg_config(dir.path(), &server, &db, "public.*", "");
    let path = table_path(dir.path(), "public", "t");
    let mut pipeline = Pipeline::start(&config);
    wait_committed(&mut pipeline, &path, 1);
    // Created and filled in one transaction, then changed again.
    change(
        &db,
        "BEGIN; CREATE TABLE fresh (id INT PRIMARY KEY, v TEXT); INSERT INTO fresh VALUES (1, 'a'), (2, 'b'); COMMIT",
    );
    let lsn = change(&db, "UPDATE fresh SET v = 'B' WHERE id = 2; INSERT INTO fresh VALUES (3, 'c')");
    let fresh = table_path(dir.path(), "public", "fresh");
    wait_past(&mut pipeline, &fresh, lsn);
    assert!(pipeline.stop().success());
    assert_eq!(mirror_lines(&python, &fresh, &["id", "v"]), source_lines(&db, "fresh", &["id", "v"]));
    assert_eq!(mirror_lines(&python, &fresh, &["id", "v"]), ["1\ta", "2\tB", "3\tc"]);
}

#[test]
fn a_renamed_column_carries_its_values_and_spark_reads_the_whole_feed() {
    let Some(server) = postgres() else { return };
    let Some(python) = python() else { return };
    let db = server.create_database().unwrap();
    sql(&db, "CREATE TABLE t (id INT PRIMARY KEY, old_name INT, gone INT); INSERT INTO t VALUES (1, 11, 1)");
    let dir = test_dir();
    let config = write_pg_config(dir.path(), &server, &db, "public.t", "");
    let path = table_path(dir.path(), "public", "t");
    let mut pipeline = Pipeline::start(&config);
    wait_committed(&mut pipeline, &path, 1);
    change(&db, "INSERT INTO t VALUES (2, 12, 2)");
    // A rename keeps the column's attribute number; a drop plus an add of the same type does not.
    change(&db, "ALTER TABLE t RENAME COLUMN old_name TO new_name");
    change(&db, "ALTER TABLE t DROP COLUMN gone; ALTER TABLE t ADD COLUMN fresh INT");
    let lsn = change(&db, "INSERT INTO t VALUES (3, 13, 3)");
    wait_past(&mut pipeline, &path, lsn);
    assert!(pipeline.stop().success());
    assert_eq!(
        mirror_lines(&python, &path, &["id", "new_name", "fresh"]),
        source_lines(&db, "t", &["id", "new_name", "fresh"])
    );
    assert_eq!(
        mirror_lines(&python, &path, &["id", "old_name", "gone"]),
        ["1\t11\t1", "2\t12\t2", "3\tnull\tnull"],
        "the old name and the dropped column are kept, NULL from the change on"
    );
    let Some(spark) = spark("the Spark schema tests") else { return };
    let feed = spark.cdf(&path, 0, None, &["_commit_version", "id"]).unwrap();
    let inserts: Vec<(i64, Json)> = feed
        .iter()
        .filter(|r| r["_change_type"] == "insert")
        .map(|r| (r["id"].as_i64().unwrap(), r["new_name"].clone()))
        .collect();
    assert_eq!(
        inserts,
        [(1, Json::Null), (2, Json::Null), (3, 13.into())],
        "the feed as written, across the rename: {feed:?}"
    );
}

/// A rename made while the pipeline was stopped: the table's stored schema
/// holds each column's attribute number, so the restart still tells the
/// rename from a drop plus an add.
#[test]
fn a_rename_made_while_the_pipeline_was_stopped_is_recognised_after_the_restart() {
    let Some(server) = postgres() else { return };
    let Some(python) = python() else { return };
    let db = server.create_database().unwrap();
    sql(&db, "CREATE TABLE t (id INT PRIMARY KEY, old_name INT, other TEXT); INSERT INTO t VALUES (1, 11, 'a')");
    let dir = test_dir();
    let config = write_pg_config(dir.path(), &server, &db, "public.t", "");
    let path = table_path(dir.path(), "public", "t");
    let mut pipeline = Pipeline::start(&config);
    wait_committed(&mut pipeline, &path, 1);
    let lsn = change(&db, "INSERT INTO t VALUES (2, 12, 'b')");
    wait_past(&mut pipeline, &path, lsn);
    assert!(pipeline.stop().success());
    sql(&db, "ALTER TABLE t RENAME COLUMN old_name TO new_name; INSERT INTO t VALUES (3, 13, 'c')");
    let mut pipeline = Pipeline::start(&config);
    let lsn = change(&db, "INSERT INTO t VALUES (4, 14, 'd')");
    wait_past(&mut pipeline, &path, lsn);
    assert!(pipeline.stop().success());
    assert_eq!(
        mirror_lines(&python, &path, &["id", "new_name", "other"]),
        source_lines(&db, "t", &["id", "new_name", "other"]),
        "older rows carry their values under the new name"
    );
    assert_eq!(mirror_lines(&python, &path, &["id", "old_name"]), ["1\t11", "2\t12", "3\tnull", "4\tnull"]);
    let status = tributary(&["status", "--config", config.to_str().unwrap(), "--format", "json"]);
    let status: Json = serde_json::from_slice(&status.stdout).unwrap();
    let listed = status[0]["schema_changes"].to_string();
    assert!(listed.contains("rename column old_name to new_name"), "{listed}");
}

/// `publish = "schemas"`: the publication covers the include patterns'
/// schemas, so a table created later streams from its creation. Creating it
/// needs a superuser: the pipeline's role gets the statement to hand over.
#[test]
fn a_schema_publication_streams_tables_created_later() {
    let Some(server) = postgres() else { return };
    let Some(python) = python() else { return };
    let db = server.create_database().unwrap();
    sql(&db, "CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t VALUES (1)");
    let dir = test_dir();
    let config = write_pg_config(dir.path(), &server, &db, "public.*", "publish = \"schemas\"");
    let path = table_path(dir.path(), "public", "t");
    let mut pipeline = Pipeline::start(&config);
    let exit = pipeline.wait_exit(CATCH_UP).expect("a role without superuser cannot create the publication");
    assert!(!exit.success());
    let log = pipeline.log_text();
    let line = log.lines().find(|l| l.contains("FOR TABLES IN SCHEMA")).unwrap_or_else(|| panic!("{log}"));
    assert!(line.contains("superuser") && line.contains("\"public\""), "{line}");
    drop(pipeline);
    let statement = format!("CREATE PUBLICATION \"{}\" FOR TABLES IN SCHEMA \"public\"", db.name());
    assert!(line.contains(&statement), "the message gives the statement: {line}");
    db.exec(&statement).unwrap();

    let mut pipeline = Pipeline::start(&config);
    wait_committed(&mut pipeline, &path, 1);
    change(&db, "BEGIN; CREATE TABLE later (id INT PRIMARY KEY, v TEXT); INSERT INTO later VALUES (1, 'a'); COMMIT");
    let lsn = change(&db, "INSERT INTO later VALUES (2, 'b')");
    let later = table_path(dir.path(), "public", "later");
    wait_past(&mut pipeline, &later, lsn);
    assert!(pipeline.stop().success());
    assert_eq!(mirror_lines(&python, &later, &["id", "v"]), ["1\ta", "2\tb"]);
}
