//! Schema changes on a real MariaDB flow into the Delta tables without
//! stopping the pipeline (docs/schema-evolution.md): DDL in the binlog is
//! followed with the schema read from the catalog, TRUNCATE empties the
//! mirror, new tables stream from their creation, and a restart from before
//! several DDL statements decodes each row with its own columns (or stops
//! clearly). Checked with the independent reader and Spark + Delta.

mod common;

use common::*;
use serde_json::Value as Json;
use std::path::Path;
use std::time::{Duration, Instant};
use tributary_testkit::{MariaDb, TestDatabase};

/// The source rows in the same form.
fn source_rows(db: &TestDatabase<'_>, table: &str, columns: &[&str]) -> Vec<String> {
    let select = columns.iter().map(|c| format!("COALESCE(CAST(`{c}` AS CHAR), 'null')")).collect::<Vec<_>>();
    let out = db.exec(&format!("SELECT {} FROM `{table}` ORDER BY id", select.join(", "))).unwrap();
    out.lines().map(str::to_string).collect()
}

/// Runs `sql`, then waits until the pipeline holds everything the server wrote.
fn change(pipeline: &mut Pipeline, server: &MariaDb, db: &TestDatabase<'_>, path: &Path, sql: &str) {
    db.exec(sql).unwrap();
    wait_committed(pipeline, path, master_version(server));
}

/// Column names of the Delta table's current schema, from the independent reader.
fn delta_columns(python: &Path, path: &Path) -> Vec<String> {
    let json = read(python, &["rows", path.to_str().unwrap()]);
    let schema: Json = serde_json::from_str(json["schema"].as_str().unwrap()).unwrap();
    schema["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_string())
        .filter(|n| !n.starts_with("_tributary"))
        .collect()
}

/// The version of the last commit whose Tributary note lists a change of `kind`.
fn last_commit_with(table: &Path, kind: &str) -> Option<i64> {
    let needle = format!("\"change\":\"{kind}\"");
    (0..)
        .map_while(|v| {
            let text = std::fs::read_to_string(table.join(format!("_delta_log/{v:020}.json"))).ok()?;
            Some((v, text.contains(&needle)))
        })
        .filter(|(_, found)| *found)
        .last()
        .map(|(v, _)| v)
}

#[test]
fn add_drop_rename_widen_and_retype_follow_the_source_and_spark_reads_the_feed() {
    let Some(server) = mariadb() else { return };
    let Some(python) = python() else { return };
    let db = server.create_database().unwrap();
    db.exec(
        "CREATE TABLE t (id INT PRIMARY KEY, qty INT, name VARCHAR(50), note TEXT, old_name INT); \
         INSERT INTO t VALUES (1, 1, 'a', 'n1', 11), (2, 2, 'b', 'n2', 12)",
    )
    .unwrap();
    let dir = test_dir();
    let config = write_config(dir.path(), &server, &format!("{}.t", db.name()), "");
    let path = table_path(dir.path(), db.name(), "t");
    let mut pipeline = Pipeline::start(&config);
    wait_committed(&mut pipeline, &path, master_version(&server));
    let started = Instant::now();

    // ADD COLUMN with a default while inserts continue from another session.
    let stop = std::sync::atomic::AtomicBool::new(false);
    let inserted = std::thread::scope(|s| {
        let writer = s.spawn(|| {
            let mut id = 100;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                db.exec(&format!("INSERT INTO t (id, qty, name) VALUES ({id}, {id}, 'w{id}')")).unwrap();
                id += 1;
            }
            id - 100
        });
        std::thread::sleep(Duration::from_millis(300));
        db.exec("ALTER TABLE t ADD COLUMN flag INT NOT NULL DEFAULT 5, ADD COLUMN extra VARCHAR(20)").unwrap();
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        writer.join().unwrap()
    });
    assert!(inserted >= 2, "inserts ran during the ALTER: {inserted}");
    change(&mut pipeline, &server, &db, &path, "INSERT INTO t (id, qty, name, flag, extra) VALUES (3, 3, 'c', 7, 'x')");
    // DROP COLUMN: kept in Delta, NULL from then on.
    db.exec("ALTER TABLE t DROP COLUMN note").unwrap();
    change(&mut pipeline, &server, &db, &path, "INSERT INTO t (id, qty, name) VALUES (4, 4, 'd')");
    // RENAME COLUMN: the new name carries the values over, the old name is kept (NULL from then on).
    db.exec("ALTER TABLE t RENAME COLUMN old_name TO new_name").unwrap();
    change(&mut pipeline, &server, &db, &path, "INSERT INTO t (id, qty, name, new_name) VALUES (5, 5, 'e', 15)");
    // INT -> BIGINT with a value above 2^31; VARCHAR(50) -> VARCHAR(200) with 150 characters.
    db.exec("ALTER TABLE t MODIFY qty BIGINT").unwrap();
    change(&mut pipeline, &server, &db, &path, "INSERT INTO t (id, qty, name) VALUES (6, 3000000000, 'f')");
    db.exec("ALTER TABLE t MODIFY name VARCHAR(200)").unwrap();
    let long = "y".repeat(150);
    change(&mut pipeline, &server, &db, &path, &format!("INSERT INTO t (id, qty, name) VALUES (7, 7, '{long}')"));
    let elapsed = started.elapsed();
    pipeline.assert_running();
    assert!(pipeline.stop().success());
    eprintln!("schema changes followed in {elapsed:?}");

    let columns = ["id", "qty", "name", "extra"];
    assert_eq!(mirror_lines(&python, &path, &columns), source_rows(&db, "t", &columns), "mirror equals source");
    // `flag` of rows written after the ALTER comes from the binlog; rows that
    // existed before it read the default (5), as in the source.
    let (mirror_flags, source_flags) =
        (mirror_lines(&python, &path, &["id", "flag"]), source_rows(&db, "t", &["id", "flag"]));
    assert_eq!(mirror_flags, source_flags, "older rows read the added column's default");
    assert!(mirror_flags.iter().any(|m| m.ends_with("\t5")) && mirror_flags.contains(&"3\t7".to_string()));
    let delta = delta_columns(&python, &path);
    assert_eq!(
        delta,
        ["id", "qty", "name", "new_name", "flag", "extra", "old_name", "note"],
        "source order, then kept columns"
    );
    // Dropped and renamed-away columns keep their values up to the change, NULL after it.
    let kept = mirror_lines(&python, &path, &["id", "note", "old_name", "new_name"]);
    assert_eq!(
        &kept[..5],
        ["1\tn1\t11\t11", "2\tn2\t12\t12", "3\tnull\tnull\tnull", "4\tnull\tnull\tnull", "5\tnull\tnull\t15"],
        "dropped and renamed-away columns keep their values up to the change; the new name carries them over"
    );
    let source_new = source_rows(&db, "t", &["id", "new_name"]);
    assert_eq!(source_new[0], "1\t11", "the source keeps the values under the new name");
    assert_eq!(mirror_lines(&python, &path, &["id", "new_name"]), source_new, "the renamed column carries its values");

    let Some(spark) = spark("the Spark schema tests") else { return };
    let schema = spark.schema(&path).unwrap();
    let types: Vec<(String, String)> = schema.iter().map(|f| (f.name.clone(), f.data_type.clone())).collect();
    assert!(types.contains(&("qty".into(), "bigint".into())), "{types:?}");
    assert!(types.contains(&("name".into(), "string".into())), "{types:?}");
    let rows = spark.rows(&path, &["id"]).unwrap();
    let big = rows.iter().find(|r| r["id"] == 6).unwrap();
    assert_eq!(big["qty"].as_i64(), Some(3_000_000_000));
    let seven = rows.iter().find(|r| r["id"] == 7).unwrap();
    assert_eq!(seven["name"].as_str().map(str::len), Some(150));
    // INT -> BIGINT changed no Delta type (every integer is `long`): Spark
    // reads the change feed over the whole range, across every change above.
    let feed = spark.cdf(&path, 0, None, &["_commit_version", "id"]).unwrap();
    let mut spark_inserts = feed_ids(&feed, "insert");
    spark_inserts.sort();
    let six = feed.iter().find(|r| r["_change_type"] == "insert" && r["id"] == 6).unwrap();
    assert_eq!(six["qty"].as_i64(), Some(3_000_000_000), "{six:?}");
    let five = feed.iter().find(|r| r["_change_type"] == "insert" && r["id"] == 5).unwrap();
    assert_eq!(five["new_name"].as_i64(), Some(15), "{five:?}");
    // The whole range, with the independent reader.
    let mut inserts: Vec<i64> = change_feed(&python, &path, 0)
        .iter()
        .filter(|r| r["_change_type"] == "insert")
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    inserts.sort();
    let mut expected: Vec<i64> = (1..=7).chain(100..100 + inserted).collect();
    expected.sort();
    assert_eq!(inserts, expected, "every insert once in the change feed");
    assert_eq!(spark_inserts, expected, "Spark reads every insert across the changes");
}

#[test]
fn existing_rows_read_the_default_of_an_added_column() {
    let Some(server) = mariadb() else { return };
    let db = server.create_database().unwrap();
    db.exec(
        "CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t VALUES (1); \
         ALTER TABLE t ADD COLUMN n INT NOT NULL DEFAULT 5, ADD COLUMN s VARCHAR(10) DEFAULT 'x''y', \
         ADD COLUMN z INT NOT NULL, ADD COLUMN e ENUM('p','q') NOT NULL, ADD COLUMN d DECIMAL(6,2) DEFAULT 1.5, \
         ADD COLUMN ts TIMESTAMP NULL DEFAULT CURRENT_TIMESTAMP, ADD COLUMN plain INT, \
         ADD COLUMN dt DATETIME DEFAULT '2024-02-29 12:00:00'",
    )
    .unwrap();
    let source: tributary_mysql::MySqlSourceConfig = toml::from_str(&format!(
        "port = {}\nuser = \"{CDC_USER}\"\npassword = \"{CDC_PASSWORD}\"\ninclude = [\"{}.t\"]",
        server.port(),
        db.name()
    ))
    .unwrap();
    let source = &source;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let schemas = rt.block_on(tributary_mysql::schema_loader::load_schema_map(source)).unwrap();
    let table = schemas.values().next().unwrap().clone();
    let names: Vec<String> = table.columns.iter().skip(1).map(|c| c.name.clone()).collect();
    let values = rt.block_on(tributary_mysql::schema_loader::existing_row_values(source, &table, &names)).unwrap();
    use tributary_core::Value;
    let mut values: Vec<(String, Value)> = values;
    values.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        values,
        [
            ("d".to_string(), Value::Decimal { unscaled: 150, scale: 2 }),
            ("dt".to_string(), Value::TimestampNtz(1_709_208_000_000_000)),
            ("e".to_string(), Value::Text("p".into())),
            ("n".to_string(), Value::Int(5)),
            ("s".to_string(), Value::Text("x'y".into())),
            ("z".to_string(), Value::Int(0)),
        ],
        "constant and implicit defaults; none for CURRENT_TIMESTAMP or a NULL default"
    );
    // An empty table needs no values.
    db.exec("DELETE FROM t").unwrap();
    let values = rt.block_on(tributary_mysql::schema_loader::existing_row_values(source, &table, &names)).unwrap();
    assert!(values.is_empty(), "{values:?}");
}

#[test]
fn several_changes_in_one_alter_and_a_sequence_of_five() {
    let Some(server) = mariadb() else { return };
    let Some(python) = python() else { return };
    let db = server.create_database().unwrap();
    db.exec("CREATE TABLE t (id INT PRIMARY KEY, a INT, x VARCHAR(10), name VARCHAR(20)); INSERT INTO t VALUES (1, 1, 'x1', 'one')")
        .unwrap();
    let dir = test_dir();
    let config = write_config(dir.path(), &server, &format!("{}.t", db.name()), "");
    let path = table_path(dir.path(), db.name(), "t");
    let mut pipeline = Pipeline::start(&config);
    wait_committed(&mut pipeline, &path, master_version(&server));
    // Several changes in one statement.
    db.exec("ALTER TABLE t ADD COLUMN b TEXT, ADD COLUMN c INT DEFAULT 3, DROP COLUMN x, MODIFY name VARCHAR(100)")
        .unwrap();
    change(&mut pipeline, &server, &db, &path, "INSERT INTO t VALUES (2, 2, 'two', 'b2', 30)");
    // A sequence of five, each followed by rows.
    for (i, ddl) in [
        "ALTER TABLE t ADD COLUMN d DECIMAL(10,2)",
        "ALTER TABLE t MODIFY name TEXT",
        "ALTER TABLE t DROP COLUMN b",
        "ALTER TABLE t ADD COLUMN e ENUM('p','q') NOT NULL",
        "ALTER TABLE t MODIFY a BIGINT",
    ]
    .iter()
    .enumerate()
    {
        db.exec(ddl).unwrap();
        change(&mut pipeline, &server, &db, &path, &format!("INSERT INTO t (id, a) VALUES ({}, {})", 10 + i, 100 + i));
    }
    change(&mut pipeline, &server, &db, &path, "UPDATE t SET d = 12.5, e = 'q', a = 5000000000 WHERE id = 14");
    assert!(pipeline.stop().success());
    let columns = ["id", "a", "name", "c", "d", "e"];
    let mirror = mirror_lines(&python, &path, &columns);
    let source = source_rows(&db, "t", &columns);
    // Rows older than a column added with a default read it as the source shows it.
    assert_eq!(mirror, source);
    assert_eq!(mirror.len(), source.len());
    assert_eq!(mirror.last().unwrap(), "14\t5000000000\tnull\t3\t12.50\tq");
    assert_eq!(delta_columns(&python, &path), ["id", "a", "name", "c", "d", "e", "b", "x"]);

    let Some(spark) = spark("the Spark schema tests") else { return };
    let rows = spark.rows(&path, &["id"]).unwrap();
    assert_eq!(rows.len(), source.len());
    assert_eq!(rows.last().unwrap()["a"].as_i64(), Some(5_000_000_000));
    let feed = spark.cdf(&path, 0, None, &["_commit_version", "id"]).unwrap();
    let inserts = feed_ids(&feed, "insert");
    assert_eq!(inserts, [1, 2, 10, 11, 12, 13, 14], "the whole feed, across the six changes: {feed:?}");
    assert!(feed.iter().any(|r| r["_change_type"] == "update_postimage" && r["id"] == 14), "{feed:?}");
}

/// A widening to another Delta type (DECIMAL precision up, FLOAT -> DOUBLE)
/// rewrites the data files; Spark 3.5 + Delta 3.x then read the change feed
/// from the widening commit on, and refuse ranges before it
/// (docs/schema-evolution.md). The mirror follows the source.
#[test]
fn a_decimal_or_float_widening_rewrites_and_spark_reads_the_feed_from_it() {
    let Some(server) = mariadb() else { return };
    let Some(python) = python() else { return };
    let db = server.create_database().unwrap();
    db.exec(
        "CREATE TABLE t (id INT PRIMARY KEY, d DECIMAL(10,2), f FLOAT); INSERT INTO t VALUES (1, 12345678.91, 1.5)",
    )
    .unwrap();
    let dir = test_dir();
    let config = write_config(dir.path(), &server, &format!("{}.t", db.name()), "");
    let path = table_path(dir.path(), db.name(), "t");
    let mut pipeline = Pipeline::start(&config);
    wait_committed(&mut pipeline, &path, master_version(&server));
    db.exec("ALTER TABLE t MODIFY d DECIMAL(14,2), MODIFY f DOUBLE").unwrap();
    change(&mut pipeline, &server, &db, &path, "INSERT INTO t VALUES (2, 123456789012.34, 0.1)");
    assert!(pipeline.stop().success());
    let columns = ["id", "d", "f"];
    assert_eq!(mirror_lines(&python, &path, &columns), source_rows(&db, "t", &columns));
    let widened = last_commit_with(&path, "widened").expect("a widening commit");

    let Some(spark) = spark("the Spark schema tests") else { return };
    let types: Vec<(String, String)> =
        spark.schema(&path).unwrap().iter().map(|f| (f.name.clone(), f.data_type.clone())).collect();
    assert!(types.contains(&("d".into(), "decimal(14,2)".into())), "{types:?}");
    assert!(types.contains(&("f".into(), "double".into())), "{types:?}");
    let refusal = spark.cdf(&path, 0, None, &["_commit_version", "id"]).unwrap_err().to_string();
    assert!(refusal.contains("DELTA_CHANGE_DATA_FEED_INCOMPATIBLE"), "{refusal}");
    let feed = spark.cdf(&path, widened, None, &["_commit_version", "id"]).unwrap();
    let inserts = feed_ids(&feed, "insert");
    assert_eq!(inserts, [2], "{feed:?}");
}

#[test]
fn ddl_in_quick_succession_decodes_each_row_with_the_binlog_columns() {
    let Some(server) = mariadb() else { return };
    let Some(python) = python() else { return };
    let db = server.create_database().unwrap();
    db.exec("CREATE TABLE t (id INT PRIMARY KEY, a INT, b VARCHAR(10)); INSERT INTO t VALUES (1, 1, 'b1')").unwrap();
    let dir = test_dir();
    let config = write_config(dir.path(), &server, &format!("{}.t", db.name()), "");
    let path = table_path(dir.path(), db.name(), "t");
    let mut pipeline = Pipeline::start(&config);
    wait_committed(&mut pipeline, &path, master_version(&server));
    // One client call: the pipeline reads the catalog after later statements ran.
    db.exec(
        "ALTER TABLE t ADD COLUMN c INT; INSERT INTO t VALUES (2, 2, 'b2', 22); \
         ALTER TABLE t DROP COLUMN b; INSERT INTO t VALUES (3, 3, 33); \
         ALTER TABLE t MODIFY a BIGINT, ADD COLUMN d VARCHAR(5) AFTER id; INSERT INTO t VALUES (4, 'd4', 4000000000, 44); \
         ALTER TABLE t RENAME COLUMN c TO cc; INSERT INTO t VALUES (5, 'd5', 5, 55)",
    )
    .unwrap();
    change(&mut pipeline, &server, &db, &path, "INSERT INTO t VALUES (6, 'd6', 6, 66)");
    let followed = pipeline.log_text().matches("decoded with the binlog's own column list").count();
    eprintln!("TABLE_MAPs the catalog read had moved past: {followed}");
    assert!(pipeline.stop().success());
    let columns = ["id", "d", "a", "cc"];
    let mirror = mirror_lines(&python, &path, &columns);
    let source = source_rows(&db, "t", &columns);
    // `cc` is `c` renamed, but the catalog was read after the rename while
    // earlier statements were decoded: the rename cannot be tied to its
    // statement and reads as drop + add (rows before it read NULL).
    assert_eq!(mirror_lines(&python, &path, &["id", "d", "a"]), source_rows(&db, "t", &["id", "d", "a"]));
    assert_eq!(&mirror[4..], &source[4..], "rows after the rename");
    let old = mirror_lines(&python, &path, &["id", "b", "c"]);
    assert_eq!(old, ["1\tb1\tnull", "2\tb2\t22", "3\tnull\t33", "4\tnull\t44", "5\tnull\tnull", "6\tnull\tnull"]);
}

#[test]
fn an_incompatible_change_stops_only_that_table_naming_column_and_types() {
    let Some(server) = mariadb() else { return };
    let Some(python) = python() else { return };
    let db = server.create_database().unwrap();
    db.exec(
        "CREATE TABLE bad (id INT PRIMARY KEY, code INT); CREATE TABLE good (id INT PRIMARY KEY, v INT); \
         INSERT INTO bad VALUES (1, 10); INSERT INTO good VALUES (1, 1)",
    )
    .unwrap();
    let dir = test_dir();
    let config = write_config(dir.path(), &server, &format!("{}.*", db.name()), "");
    let (bad, good) = (table_path(dir.path(), db.name(), "bad"), table_path(dir.path(), db.name(), "good"));
    let mut pipeline = Pipeline::start(&config);
    wait_committed(&mut pipeline, &good, master_version(&server));
    db.exec("ALTER TABLE bad MODIFY code VARCHAR(20)").unwrap();
    db.exec("INSERT INTO bad VALUES (2, 'twenty')").unwrap();
    change(&mut pipeline, &server, &db, &good, "INSERT INTO good VALUES (2, 2)");
    change(&mut pipeline, &server, &db, &good, "UPDATE good SET v = 20 WHERE id = 2");
    pipeline.assert_running();
    let log = pipeline.log_text();
    let line =
        log.lines().find(|l| l.contains("table stopped")).unwrap_or_else(|| panic!("no stop in the log:\n{log}"));
    assert!(
        line.contains("code")
            && line.contains("int(11)")
            && line.contains("varchar(20)")
            && line.contains("re-snapshot"),
        "{line}"
    );
    assert!(line.contains("incompatible_type_changes"), "{line}");
    eprintln!("incompatible: {line}");
    assert!(pipeline.stop().success());
    assert_eq!(mirror_lines(&python, &good, &["id", "v"]), ["1\t1", "2\t20"]);
    assert_eq!(mirror_lines(&python, &bad, &["id", "code"]), ["1\t10"], "nothing after the change");

    // The option the message names: map the column to string, restart. The
    // table goes on from its position; the older value becomes its text.
    let text = std::fs::read_to_string(&config).unwrap();
    let text =
        text.replace("checkpoint_interval = 5", "checkpoint_interval = 5\nincompatible_type_changes = \"string\"");
    std::fs::write(&config, text).unwrap();
    let mut pipeline = Pipeline::start(&config);
    change(&mut pipeline, &server, &db, &bad, "INSERT INTO bad VALUES (3, 'thirty')");
    assert!(pipeline.log_text().contains("store code as text"), "{}", pipeline.log_text());
    assert!(pipeline.stop().success());
    assert_eq!(mirror_lines(&python, &bad, &["id", "code"]), source_rows(&db, "bad", &["id", "code"]));
    assert_eq!(delta_columns(&python, &bad), ["id", "code"]);
    let (code, json, stderr) = validate_json(&config, &["--table", &format!("{}.bad", db.name())]);
    assert_eq!(code, 0, "the text column validates against the source: {json:#} {stderr}");
}

#[test]
fn truncate_empties_the_mirror_and_new_tables_stream_from_their_creation() {
    let Some(server) = mariadb() else { return };
    let Some(python) = python() else { return };
    let db = server.create_database().unwrap();
    db.exec("CREATE TABLE t (id INT PRIMARY KEY, v INT); INSERT INTO t VALUES (1, 1), (2, 2)").unwrap();
    let dir = test_dir();
    let config = write_config(dir.path(), &server, &format!("{}.*", db.name()), "");
    let path = table_path(dir.path(), db.name(), "t");
    let mut pipeline = Pipeline::start(&config);
    wait_committed(&mut pipeline, &path, master_version(&server));

    db.exec("TRUNCATE TABLE t").unwrap();
    change(&mut pipeline, &server, &db, &path, "INSERT INTO t VALUES (3, 3)");
    // New tables: plain, LIKE, and created again after a DROP.
    db.exec("CREATE TABLE n1 (id INT PRIMARY KEY, s VARCHAR(10))").unwrap();
    let n1 = table_path(dir.path(), db.name(), "n1");
    change(
        &mut pipeline,
        &server,
        &db,
        &n1,
        "INSERT INTO n1 VALUES (1, 'a'), (2, 'b'); UPDATE n1 SET s = 'bb' WHERE id = 2",
    );
    db.exec("CREATE TABLE n2 LIKE n1").unwrap();
    let n2 = table_path(dir.path(), db.name(), "n2");
    change(&mut pipeline, &server, &db, &n2, "INSERT INTO n2 VALUES (7, 'seven')");
    db.exec("ALTER TABLE n2 ADD COLUMN k INT, DROP COLUMN s").unwrap();
    change(&mut pipeline, &server, &db, &n2, "INSERT INTO n2 VALUES (8, 80)");
    db.exec("DROP TABLE n1").unwrap();
    db.exec("CREATE TABLE n1 (id INT PRIMARY KEY, s VARCHAR(10), extra INT)").unwrap();
    change(&mut pipeline, &server, &db, &n1, "INSERT INTO n1 VALUES (9, 'nine', 99)");
    assert!(pipeline.stop().success());

    assert_eq!(mirror_lines(&python, &path, &["id", "v"]), source_rows(&db, "t", &["id", "v"]));
    let feed = change_feed(&python, &path, 0);
    assert_eq!(feed_ids(&feed, "delete"), [1, 2], "TRUNCATE is a delete of every row in the change feed: {feed:?}");
    assert_eq!(feed_ids(&feed, "insert"), [1, 2, 3]);
    assert_eq!(mirror_lines(&python, &n2, &["id", "k"]), source_rows(&db, "n2", &["id", "k"]));
    assert_eq!(mirror_lines(&python, &n2, &["id", "s"]), ["7\tseven", "8\tnull"]);
    assert_eq!(mirror_lines(&python, &n1, &["id", "s", "extra"]), ["9\tnine\t99"], "the dropped table's rows are gone");
    let log = std::fs::read_dir(dir.path()).unwrap().filter_map(|e| std::fs::read_to_string(e.unwrap().path()).ok());
    assert!(log.collect::<String>().contains("table dropped: its Delta table is kept"));

    let Some(spark) = spark("the Spark schema tests") else { return };
    // Across TRUNCATE, and across an added and a dropped column, in one read.
    for (table, expected) in [(&path, 5), (&n2, 2)] {
        let feed = spark.cdf(table, 0, None, &["_commit_version", "id"]).unwrap();
        assert_eq!(feed.len(), expected, "{feed:?}");
    }
}

#[test]
fn create_table_as_select_streams_its_rows() {
    let Some(server) = mariadb() else { return };
    let Some(python) = python() else { return };
    let db = server.create_database().unwrap();
    db.exec("CREATE TABLE t (id INT PRIMARY KEY, v INT); INSERT INTO t VALUES (1, 1), (2, 2)").unwrap();
    let dir = test_dir();
    let config = write_config(dir.path(), &server, &format!("{}.*", db.name()), "");
    let path = table_path(dir.path(), db.name(), "t");
    let mut pipeline = Pipeline::start(&config);
    wait_committed(&mut pipeline, &path, master_version(&server));
    db.exec("CREATE TABLE copy (PRIMARY KEY (id)) SELECT id, v * 10 AS v FROM t").unwrap();
    let copy = table_path(dir.path(), db.name(), "copy");
    change(&mut pipeline, &server, &db, &copy, "INSERT INTO copy VALUES (3, 30)");
    assert!(pipeline.stop().success());
    assert_eq!(mirror_lines(&python, &copy, &["id", "v"]), source_rows(&db, "copy", &["id", "v"]));
}

#[test]
fn a_table_renamed_away_is_kept_and_one_renamed_into_the_filter_asks_for_a_snapshot() {
    let Some(server) = mariadb() else { return };
    let Some(python) = python() else { return };
    let db = server.create_database().unwrap();
    db.exec(
        "CREATE TABLE t (id INT PRIMARY KEY, v INT); INSERT INTO t VALUES (1, 1); \
         CREATE TABLE other (id INT PRIMARY KEY, v INT); INSERT INTO other VALUES (5, 5)",
    )
    .unwrap();
    let dir = test_dir();
    let config = write_config(dir.path(), &server, &format!("{}.t%", db.name()).replace('%', "*"), "");
    let path = table_path(dir.path(), db.name(), "t");
    let mut pipeline = Pipeline::start(&config);
    wait_committed(&mut pipeline, &path, master_version(&server));
    change(&mut pipeline, &server, &db, &path, "INSERT INTO t VALUES (2, 2)");
    // Renamed to a name the filter does not select: the Delta table stays as it was.
    db.exec("RENAME TABLE t TO archived").unwrap();
    db.exec("INSERT INTO archived VALUES (3, 3)").unwrap();
    // Renamed into the filter: its rows were never streamed, so the pipeline asks for a snapshot.
    db.exec("RENAME TABLE other TO t2").unwrap();
    let exit = pipeline.wait_exit(CATCH_UP).expect("the pipeline stops at the rename into the filter");
    assert!(!exit.success());
    let log = pipeline.log_text();
    let line = log.lines().rev().find(|l| l.contains("renamed to")).unwrap_or_else(|| panic!("{log}"));
    assert!(line.contains(".other") && line.contains(".t2") && line.contains("re-snapshot"), "{line}");
    eprintln!("rename into the filter: {line}");
    assert!(log.contains("table renamed: its Delta table is kept"), "{log}");
    assert_eq!(mirror_lines(&python, &path, &["id", "v"]), ["1\t1", "2\t2"]);
    drop(pipeline);

    // The fix the message gives: t2 has no Delta table yet, so a start copies it.
    let t2 = table_path(dir.path(), db.name(), "t2");
    let mut pipeline = Pipeline::start(&config);
    change(&mut pipeline, &server, &db, &t2, "INSERT INTO t2 VALUES (6, 6)");
    assert!(pipeline.stop().success());
    assert_eq!(mirror_lines(&python, &t2, &["id", "v"]), ["5\t5", "6\t6"]);
    assert_eq!(mirror_lines(&python, &path, &["id", "v"]), ["1\t1", "2\t2"]);
}

/// gh-ost's cut-over swaps its copy in: `RENAME TABLE t TO _t_del, _t_gho TO t`.
/// The table goes on with the copy's schema (the tool kept the rows equal),
/// with the tools' helper tables matched by the filter too.
#[test]
fn an_online_schema_change_cut_over_continues_the_table_with_the_new_schema() {
    let Some(server) = mariadb() else { return };
    let Some(python) = python() else { return };
    let db = server.create_database().unwrap();
    db.exec("CREATE TABLE orders (id INT PRIMARY KEY, qty INT); INSERT INTO orders VALUES (1, 1), (2, 2)").unwrap();
    let dir = test_dir();
    let config = write_config(dir.path(), &server, &format!("{}.*", db.name()), "");
    let path = table_path(dir.path(), db.name(), "orders");
    let mut pipeline = Pipeline::start(&config);
    wait_committed(&mut pipeline, &path, master_version(&server));
    // What gh-ost does: a copy with the new schema, filled with the rows,
    // changes applied to both, then the atomic swap and the drop.
    db.exec(
        "CREATE TABLE _orders_gho LIKE orders;          ALTER TABLE _orders_gho ADD COLUMN note VARCHAR(20) NOT NULL DEFAULT 'x', MODIFY qty BIGINT;          INSERT INTO _orders_gho (id, qty) SELECT id, qty FROM orders;          UPDATE orders SET qty = 20 WHERE id = 2; UPDATE _orders_gho SET qty = 20 WHERE id = 2;          RENAME TABLE orders TO _orders_del, _orders_gho TO orders;          DROP TABLE _orders_del",
    )
    .unwrap();
    change(&mut pipeline, &server, &db, &path, "INSERT INTO orders VALUES (3, 3000000000, 'three')");
    pipeline.assert_running();
    let log = pipeline.log_text();
    assert!(log.contains("online schema change cut-over"), "{log}");
    assert!(pipeline.stop().success());
    let columns = ["id", "qty", "note"];
    assert_eq!(mirror_lines(&python, &path, &columns), source_rows(&db, "orders", &columns));
    assert_eq!(delta_columns(&python, &path), ["id", "qty", "note"]);
    let (code, json, stderr) = validate_json(&config, &["--table", &format!("{}.orders", db.name())]);
    assert_eq!(code, 0, "{json:#} {stderr}");

    let Some(spark) = spark("the Spark schema tests") else { return };
    let feed = spark.cdf(&path, 0, None, &["_commit_version", "id"]).unwrap();
    let kinds: Vec<String> =
        feed.iter().map(|r| format!("{}:{}", r["id"], r["_change_type"].as_str().unwrap())).collect();
    assert_eq!(kinds, ["1:insert", "2:insert", "2:update_preimage", "2:update_postimage", "3:insert"], "{feed:?}");
}

/// A rename made while the pipeline was stopped: the binlog replays the
/// statement, which says it is a rename.
#[test]
fn a_rename_made_while_the_pipeline_was_stopped_is_recognised_from_the_statement() {
    let Some(server) = mariadb() else { return };
    let Some(python) = python() else { return };
    let db = server.create_database().unwrap();
    db.exec("CREATE TABLE t (id INT PRIMARY KEY, old_name INT); INSERT INTO t VALUES (1, 11)").unwrap();
    let dir = test_dir();
    let config = write_config(dir.path(), &server, &format!("{}.t", db.name()), "");
    let path = table_path(dir.path(), db.name(), "t");
    let mut pipeline = Pipeline::start(&config);
    wait_committed(&mut pipeline, &path, master_version(&server));
    assert!(pipeline.stop().success());
    db.exec("ALTER TABLE t RENAME COLUMN old_name TO new_name; INSERT INTO t VALUES (2, 12)").unwrap();
    let mut pipeline = Pipeline::start(&config);
    change(&mut pipeline, &server, &db, &path, "INSERT INTO t VALUES (3, 13)");
    assert!(pipeline.stop().success());
    assert_eq!(mirror_lines(&python, &path, &["id", "new_name"]), source_rows(&db, "t", &["id", "new_name"]));
    assert_eq!(mirror_lines(&python, &path, &["id", "old_name"]), ["1\t11", "2\tnull", "3\tnull"]);
}

#[test]
fn a_restart_from_before_several_ddl_decodes_each_row_with_its_columns() {
    let Some(server) = mariadb() else { return };
    let Some(python) = python() else { return };
    let db = server.create_database().unwrap();
    db.exec("CREATE TABLE t (id INT PRIMARY KEY, a INT, b VARCHAR(10)); INSERT INTO t VALUES (1, 1, 'b1')").unwrap();
    let dir = test_dir();
    let config = write_config(dir.path(), &server, &format!("{}.t", db.name()), "");
    let path = table_path(dir.path(), db.name(), "t");
    let mut pipeline = Pipeline::start(&config);
    wait_committed(&mut pipeline, &path, master_version(&server));
    assert!(pipeline.stop().success());
    // While the pipeline is down: rows under four schemas; the catalog shows only the last.
    db.exec("INSERT INTO t VALUES (2, 2, 'b2')").unwrap();
    db.exec("ALTER TABLE t ADD COLUMN c INT").unwrap();
    db.exec("INSERT INTO t VALUES (3, 3, 'b3', 33)").unwrap();
    db.exec("ALTER TABLE t DROP COLUMN b, MODIFY a BIGINT").unwrap();
    db.exec("INSERT INTO t VALUES (4, 4000000000, 44)").unwrap();
    db.exec("ALTER TABLE t ADD COLUMN b VARCHAR(10) AFTER id").unwrap();
    db.exec("INSERT INTO t VALUES (5, 'new', 5, 55)").unwrap();
    let mut pipeline = Pipeline::start(&config);
    change(&mut pipeline, &server, &db, &path, "INSERT INTO t VALUES (6, 'six', 6, 66)");
    let log = pipeline.log_text();
    assert!(pipeline.stop().success());
    assert!(log.contains("decoded with the binlog's own column list"), "{log}");
    let columns = ["id", "a", "c"];
    assert_eq!(mirror_lines(&python, &path, &columns), source_rows(&db, "t", &columns));
    assert_eq!(
        mirror_lines(&python, &path, &columns),
        ["1\t1\tnull", "2\t2\tnull", "3\t3\t33", "4\t4000000000\t44", "5\t5\t55", "6\t6\t66"]
    );
    // `b` was dropped and added again: the source shows NULL for every row
    // older than the new `b`; the Delta table keeps the values rows had
    // before the drop (a Delta-side choice for a restored column).
    let b = mirror_lines(&python, &path, &["id", "b"]);
    assert_eq!(&b[3..], &source_rows(&db, "t", &["id", "b"])[3..], "rows from the drop of b on");
    assert_eq!(&b[..3], ["1\tb1", "2\tb2", "3\tb3"]);

    // Spark reads the whole change feed: each insert with the columns it was written with.
    let Some(spark) = spark("the Spark schema tests") else { return };
    let feed = spark.cdf(&path, 0, None, &["_commit_version", "id"]).unwrap();
    let inserts: Vec<String> = feed
        .iter()
        .filter(|r| r["_change_type"] == "insert")
        .map(|r| format!("{}\t{}\t{}", r["id"], r["a"], r["c"]))
        .collect();
    assert_eq!(inserts, ["1\t1\tnull", "2\t2\tnull", "3\t3\t33", "4\t4000000000\t44", "5\t5\t55", "6\t6\t66"]);
}

#[test]
fn without_column_names_in_the_binlog_a_restart_across_several_ddl_stops_clearly() {
    let Some(server) = mariadb() else { return };
    let db = server.create_database().unwrap();
    db.exec("CREATE TABLE t (id INT PRIMARY KEY, a INT); INSERT INTO t VALUES (1, 1)").unwrap();
    let dir = test_dir();
    let config = write_config(dir.path(), &server, &format!("{}.t", db.name()), "");
    let path = table_path(dir.path(), db.name(), "t");
    let mut pipeline = Pipeline::start(&config);
    wait_committed(&mut pipeline, &path, master_version(&server));
    assert!(pipeline.stop().success());
    // This test's own server: TABLE_MAP events without column names from here on.
    server.exec("SET GLOBAL binlog_row_metadata = 'MINIMAL'").unwrap();
    db.exec("ALTER TABLE t ADD COLUMN b TEXT").unwrap();
    db.exec("INSERT INTO t VALUES (2, 2, 'two')").unwrap();
    db.exec("ALTER TABLE t DROP COLUMN a").unwrap();
    db.exec("INSERT INTO t VALUES (3, 'three')").unwrap();
    let mut pipeline = Pipeline::start(&config);
    let exit = pipeline.wait_exit(CATCH_UP).expect("the pipeline stops");
    assert!(!exit.success());
    let log = pipeline.log_text();
    let line = log.lines().rev().find(|l| l.contains("binlog_row_metadata")).unwrap_or_else(|| panic!("{log}"));
    assert!(
        line.contains(&format!("{}.t", db.name())) && line.contains("byte offset") && line.contains("re-snapshot"),
        "{line}"
    );
    eprintln!("without column names: {line}");
}
