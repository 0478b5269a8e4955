//! Every PostgreSQL type of docs/types.md round-trips exactly: a row copied by
//! the snapshot and the same row streamed through pgoutput come out
//! identical, each value equals what the server computes for it, each column
//! has the documented Delta and Spark type, and an UPDATE (every column, and
//! one that leaves a TOASTed value unchanged) and a DELETE reach the mirror
//! and the change feed. Read by delta-rs (Python) and by Spark.

mod common;

use common::pg::*;
use common::pg_types::*;
use common::*;
use serde_json::{json, Value as Json};
use tributary_testkit::postgres::{REPLICATION_PASSWORD, REPLICATION_USER};

type JsonRow = serde_json::Map<String, Json>;

fn by_id(rows: &[JsonRow], id: i64) -> &JsonRow {
    rows.iter().find(|r| r["id"] == json!(id)).unwrap_or_else(|| panic!("no row {id} in {rows:?}"))
}

/// Every row a reader returned equals the server's expectation, column by column
/// (every mismatch listed).
fn assert_rows_match_server(reader: &str, rows: &[JsonRow], expected: &[(i64, Vec<Cell>)]) {
    let mut ids: Vec<i64> = rows.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    ids.sort();
    assert_eq!(ids, expected.iter().map(|e| e.0).collect::<Vec<_>>(), "{reader}: the ids");
    let mut wrong = Vec::new();
    for (id, cells) in expected {
        let row = by_id(rows, *id);
        for (case, want) in TYPES.iter().zip(cells) {
            wrong.extend(check_cell(reader, case, *id, &row[case.name], want).err());
        }
    }
    assert!(wrong.is_empty(), "{} wrong values:\n{}", wrong.len(), wrong.join("\n"));
}

/// The row copied by the snapshot and the row streamed by pgoutput hold the same values
/// (but for the columns in `except`).
fn assert_same_row(rows: &[JsonRow], snapshot_id: i64, streamed_id: i64, except: &[&str]) {
    let (a, b) = (by_id(rows, snapshot_id), by_id(rows, streamed_id));
    let wrong: Vec<String> = TYPES
        .iter()
        .filter(|case| !except.contains(&case.name) && a[case.name] != b[case.name])
        .map(|case| format!("{} ({}): {} vs {}", case.name, case.ddl, a[case.name], b[case.name]))
        .collect();
    assert!(wrong.is_empty(), "row {snapshot_id} (snapshot) vs row {streamed_id} (streamed):\n{}", wrong.join("\n"));
}

fn assert_types(fields: &[Json]) {
    for case in TYPES {
        let field = fields.iter().find(|f| f["name"] == case.name).unwrap_or_else(|| panic!("{}", case.name));
        assert_eq!(delta_type_name(&field["type"]), case.delta_type, "Delta type of {} ({})", case.name, case.ddl);
        assert_eq!(field["nullable"], json!(true), "{}", case.name);
    }
}

#[test]
fn every_postgres_type_round_trips_through_snapshot_and_pgoutput() {
    let Some(server) = postgres() else { return };
    let Some(python) = python() else { return };
    let db = server.create_database().unwrap();
    // Every session of the pipeline prints timestamptz in this zone; inserts happen in another.
    db.exec(&format!("ALTER DATABASE \"{}\" SET TimeZone = '{DATABASE_TIME_ZONE}'", db.name())).unwrap();
    let replication_tz = server
        .exec_as(
            REPLICATION_USER,
            REPLICATION_PASSWORD,
            &format!("dbname={} replication=database", db.name()),
            "SHOW TimeZone",
        )
        .unwrap();
    assert_eq!(replication_tz.trim(), DATABASE_TIME_ZONE, "the walsender's time zone");
    create_table(&db);
    // Rows A, B, C and all-NULL, copied by the snapshot.
    for variant in 0..4 {
        sql(&db, &insert_sql(variant as i64 + 1, variant));
    }
    let dir = test_dir();
    let config = write_pg_config(dir.path(), &server, &db, "public.alltypes", "");
    let path = table_path(dir.path(), "public", "alltypes");
    let mut pipeline = Pipeline::start(&config);
    wait_committed(&mut pipeline, &path, 1);

    // The same rows through pgoutput.
    let mut lsn = 0;
    for variant in 0..4 {
        lsn = change(&db, &insert_sql(variant as i64 + 101, variant));
    }
    wait_past(&mut pipeline, &path, lsn);
    let (inserted_version, fields, rows) = read_raw(&python, &["rows", path.to_str().unwrap()]);
    assert_types(&fields);
    assert_rows_match_server("delta-rs after the inserts", &rows, &server_rows(&db));
    for id in 1..=4 {
        assert_same_row(&rows, id, id + 100, &[]);
    }
    // A few values spelled out, independent of the server's arithmetic.
    let a = by_id(&rows, 1);
    assert_eq!(a["ip"], json!("192.168.0.1/24"));
    assert_eq!(by_id(&rows, 3)["ip"], json!("10.0.0.1"), "inet prints no /32 for a host");
    assert_eq!(a["tstz"], json!(1_704_177_245_500_000i64), "03:04:05.5 at -03:30 is 06:34:05.5 UTC");
    assert_eq!(a["d"], json!(-735_160), "44 BC is astronomical year -43");
    assert_eq!(a["c"], json!("ab   "), "char(5) keeps its padding");
    assert_eq!(a["n102"], json!("-12345678.91"));
    assert_eq!(
        a["ta"],
        json!(["a b", "with \"quote\"", "back\\slash", null, "NULL", "", "é", "{x,y}", " pad "]),
        "text[] with quoted elements and NULL"
    );
    assert_eq!(a["ia"], json!([1, null, -3]));
    assert_eq!(by_id(&rows, 3)["tstz"], json!(-2_195_899_200_000_000i64), "1900-06-01 12:00 UTC (LMT +05:41:16)");
    let b = by_id(&rows, 2);
    for (column, stored) in
        [("n102", json!(null)), ("nu", json!("NaN")), ("f4", json!("NaN")), ("f8", json!("Infinity"))]
    {
        assert_eq!(b[column], stored, "row B {column}");
    }
    for column in ["d", "d2", "ts", "tstz", "tstz2"] {
        assert!(b[column].is_null(), "an infinite {column} is stored as null: {}", b[column]);
    }

    let toast = sql(&db, "SELECT pg_relation_size(reltoastrelid) FROM pg_class WHERE relname = 'alltypes'");
    assert!(toast.trim().parse::<i64>().unwrap() > 0, "row A's tb is stored out of line (TOAST)");
    // UPDATE every column (101: A -> B, 4: NULLs -> A), an UPDATE that leaves the
    // TOASTed text out of the WAL (1), and a DELETE (103).
    change(&db, &copy_row_sql(101, 2));
    change(&db, &copy_row_sql(4, 1));
    change(&db, "UPDATE alltypes SET i4 = 7 WHERE id = 1");
    let lsn = change(&db, "DELETE FROM alltypes WHERE id = 103");
    wait_past(&mut pipeline, &path, lsn);
    assert!(pipeline.stop().success());

    let expected = server_rows(&db);
    let (_, fields, rows) = read_raw(&python, &["rows", path.to_str().unwrap()]);
    assert_types(&fields);
    assert_rows_match_server("delta-rs after the updates", &rows, &expected);
    assert_eq!(by_id(&rows, 1)["tb"].as_str().map(str::len), Some(9600), "the unchanged TOASTed value is kept");
    assert_same_row(&rows, 2, 101, &[]);
    assert_same_row(&rows, 1, 4, &["i4"]);

    // The change feed: exactly the three updates and the delete, with their images.
    let (_, _, feed) = read_raw(&python, &["cdf", path.to_str().unwrap(), &(inserted_version + 1).to_string()]);
    let mut changes: Vec<(i64, String)> =
        feed.iter().map(|r| (r["id"].as_i64().unwrap(), r["_change_type"].as_str().unwrap().to_string())).collect();
    changes.sort();
    assert_eq!(
        changes,
        [
            (1, "update_postimage"),
            (1, "update_preimage"),
            (4, "update_postimage"),
            (4, "update_preimage"),
            (101, "update_postimage"),
            (101, "update_preimage"),
            (103, "delete"),
        ]
        .map(|(id, t)| (id, t.to_string())),
        "{feed:?}"
    );
    let image =
        |id: i64, kind: &str| feed.iter().find(|r| r["id"] == json!(id) && r["_change_type"] == kind).unwrap().clone();
    for case in TYPES {
        // 101's preimage is row A as streamed, its postimage row B; 103 was row C.
        assert_eq!(image(101, "update_preimage")[case.name], by_id(&rows, 4)[case.name], "{}", case.name);
        assert_eq!(image(101, "update_postimage")[case.name], by_id(&rows, 2)[case.name], "{}", case.name);
        assert_eq!(image(103, "delete")[case.name], by_id(&rows, 3)[case.name], "{}", case.name);
        if case.name != "i4" {
            assert_eq!(
                image(1, "update_preimage")[case.name],
                image(1, "update_postimage")[case.name],
                "{}",
                case.name
            );
        }
    }
    assert!(image(4, "update_preimage")["i4"].is_null());

    // Spark: the documented types and the same values.
    let Some(spark) = spark("the Spark type test") else { return };
    let schema = spark.schema(&path).unwrap();
    for case in TYPES {
        let field =
            schema.iter().find(|f| f.name == case.name).unwrap_or_else(|| panic!("{} in {schema:?}", case.name));
        assert_eq!(field.data_type, case.spark_type, "Spark type of {} ({})", case.name, case.ddl);
    }
    let spark_rows =
        spark.sql(&format!("SELECT {} FROM delta.`{}` ORDER BY id", spark_select(), path.display())).unwrap();
    assert_rows_match_server("Spark", &spark_rows, &expected);
}

#[test]
fn a_stored_generated_column_is_left_out_like_pgoutput_leaves_it_out() {
    let Some(server) = postgres() else { return };
    let Some(python) = python() else { return };
    let db = server.create_database().unwrap();
    sql(
        &db,
        "CREATE TABLE gen (id INT PRIMARY KEY, qty INT, doubled INT GENERATED ALWAYS AS (qty * 2) STORED, note TEXT); \
         INSERT INTO gen (id, qty, note) VALUES (1, 10, 'a')",
    );
    let dir = test_dir();
    let config = write_pg_config(dir.path(), &server, &db, "public.gen", "");
    let path = table_path(dir.path(), "public", "gen");
    let mut pipeline = Pipeline::start(&config);
    wait_committed(&mut pipeline, &path, 1);
    change(&db, "INSERT INTO gen (id, qty, note) VALUES (2, 20, 'b')");
    let lsn = change(&db, "UPDATE gen SET qty = 11 WHERE id = 1");
    wait_past(&mut pipeline, &path, lsn);
    assert!(pipeline.stop().success());
    let rows = mirror_rows(&python, &path);
    assert_eq!(
        rows.iter().map(|r| Json::Object(r.clone())).collect::<Vec<_>>(),
        [json!({"id": 1, "qty": 11, "note": "a"}), json!({"id": 2, "qty": 20, "note": "b"})]
    );
}
