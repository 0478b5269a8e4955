//! Every MySQL / MariaDB type of docs/types.md round-trips exactly: through the
//! snapshot and through the binlog, the Delta value (read by an independent
//! reader) equals what the server returns for the same row, and each column
//! has the documented Delta type.

mod common;

use common::*;
use serde_json::Value as Json;

/// (column, DDL type, server expression rendering the expected value, Delta type).
const COLUMNS: &[(&str, &str, &str, &str)] = &[
    ("ti", "TINYINT", "ti", "byte"),
    ("tiu", "TINYINT UNSIGNED", "tiu", "short"),
    ("si", "SMALLINT", "si", "short"),
    ("siu", "SMALLINT UNSIGNED", "siu", "integer"),
    ("mi", "MEDIUMINT", "mi", "integer"),
    ("miu", "MEDIUMINT UNSIGNED", "miu", "integer"),
    ("i", "INT", "i", "integer"),
    ("iu", "INT UNSIGNED", "iu", "long"),
    ("bi", "BIGINT", "bi", "long"),
    ("biu", "BIGINT UNSIGNED", "biu", "decimal(20,0)"),
    ("dec1", "DECIMAL(10,2)", "dec1", "decimal(10,2)"),
    ("dec2", "DECIMAL(38,10)", "dec2", "decimal(38,10)"),
    ("dec3", "DECIMAL(65,30)", "dec3", "string"),
    ("fl", "FLOAT", "fl", "float"),
    ("db", "DOUBLE", "db", "double"),
    ("d", "DATE", "d", "date"),
    ("dt0", "DATETIME", "dt0", "timestamp_ntz"),
    ("dt6", "DATETIME(6)", "dt6", "timestamp_ntz"),
    ("ts0", "TIMESTAMP NULL", "ts0", "timestamp"),
    ("ts3", "TIMESTAMP(3) NULL", "ts3", "timestamp"),
    ("tm", "TIME", "tm", "string"),
    ("tm2", "TIME(2)", "tm2", "string"),
    ("y", "YEAR", "y", "short"),
    ("c", "CHAR(5)", "c", "string"),
    ("vc", "VARCHAR(20)", "vc", "string"),
    ("tx", "TEXT", "tx", "string"),
    ("bn", "BINARY(4)", "LOWER(HEX(bn))", "binary"),
    ("vb", "VARBINARY(10)", "LOWER(HEX(vb))", "binary"),
    ("bl", "BLOB", "LOWER(HEX(bl))", "binary"),
    ("e", "ENUM('small','medium','large')", "e", "string"),
    ("st", "SET('a','b','c')", "st", "string"),
    ("j", "JSON", "j", "string"),
    ("b1", "BIT(1)", "b1+0", "boolean"),
    ("b10", "BIT(10)", "LOWER(LPAD(HEX(b10),4,'0'))", "binary"),
    ("g", "GEOMETRY", "LOWER(HEX(ST_AsWKB(g)))", "binary"),
];

const ROW_MIN: &str = "(1, -128, 0, -32768, 0, -8388608, 0, -2147483648, 0, -9223372036854775808, 0, \
    -12345678.91, -1234567890123456789012345678.0123456789, -12345678901234567890123456789012345.123456789012345678901234567890, \
    1.5, -2.5e-300, '1000-01-01', '1000-01-01 00:00:00', '9999-12-31 23:59:59.999999', '1970-01-01 00:00:01', \
    '2038-01-19 03:14:07.999', '-838:59:59', '12:34:56.78', 1901, 'ab', 'héllo 🦀', 'text', 0x00ff10ab, 0x0102, \
    0xdeadbeef, 'large', 'a,c', '{\"k\": [1, 2]}', b'1', b'1010100101', ST_GeomFromText('POINT(1 2)'))";
const ROW_MAX: &str = "(2, 127, 255, 32767, 65535, 8388607, 16777215, 2147483647, 4294967295, 9223372036854775807, \
    18446744073709551615, 99999999.99, 9999999999999999999999999999.9999999999, 0.000000000000000000000000000001, \
    -0.25, 1.7976931348623157e308, '9999-12-31', '2024-02-29 13:14:15', '2024-02-29 13:14:15.000001', \
    '2024-02-29 13:14:15', '2024-02-29 13:14:15.123', '838:59:59', '-00:00:00.01', 2155, 'abcde', '', REPEAT('x', 300), \
    0x00000000, X'', X'', 'small', '', '[]', b'0', b'0000000001', ST_GeomFromText('LINESTRING(0 0, 1 1.5)'))";

fn create_table(db: &tributary_testkit::TestDatabase<'_>) {
    let cols: Vec<String> = COLUMNS.iter().map(|(n, t, _, _)| format!("{n} {t}")).collect();
    db.exec(&format!("CREATE TABLE alltypes (id INT PRIMARY KEY, {})", cols.join(", "))).unwrap();
}

/// The server's rendering of every row, with NULL as JSON null.
fn server_rows(server: &tributary_testkit::MariaDb, db: &str) -> Vec<Vec<Option<String>>> {
    let exprs: Vec<&str> = COLUMNS.iter().map(|c| c.2).collect();
    let sql = format!("SET time_zone = '+00:00'; SELECT {} FROM `{db}`.alltypes ORDER BY id", exprs.join(", "));
    source_lines(server, &sql)
        .iter()
        .map(|line| line.split('\t').map(|v| if v == "NULL" { None } else { Some(v.to_string()) }).collect())
        .collect()
}

/// Normalises date-times to `YYYY-MM-DD HH:MM:SS.ffffff`.
fn datetime(text: &str) -> String {
    let t = text.replace('T', " ").replace("+00:00", "");
    let (main, frac) = t.split_once('.').unwrap_or((&t, ""));
    format!("{main}.{:0<6}", frac)
}

fn check_value(column: &str, delta: &Json, server: &Option<String>, row: usize) {
    let Some(expected) = server else {
        assert!(delta.is_null(), "row {row} {column}: server NULL, Delta {delta}");
        return;
    };
    let got = match delta {
        Json::Null => panic!("row {row} {column}: server {expected}, Delta null"),
        Json::Bool(b) => (if *b { "1" } else { "0" }).to_string(),
        Json::String(s) => s.clone(),
        other => other.to_string(),
    };
    let same = match column {
        "fl" | "db" => got.parse::<f64>().unwrap() == expected.parse::<f64>().unwrap(),
        "dt0" | "dt6" | "ts0" | "ts3" => datetime(&got) == datetime(expected),
        "j" => serde_json::from_str::<Json>(&got).unwrap() == serde_json::from_str::<Json>(expected).unwrap(),
        _ => got == *expected,
    };
    assert!(same, "row {row} column {column}: server {expected:?}, Delta {got:?}");
}

#[test]
fn every_mapped_type_round_trips_through_snapshot_and_binlog() {
    let Some(server) = mariadb() else { return };
    let Some(python) = python() else { return };
    let db = server.create_database().unwrap();
    create_table(&db);
    db.exec(&format!("INSERT INTO alltypes VALUES {ROW_MIN}")).unwrap(); // via the snapshot
    let dir = test_dir();
    let config = write_config(dir.path(), &server, &format!("{}.alltypes", db.name()), "");
    let path = table_path(dir.path(), db.name(), "alltypes");
    let mut pipeline = Pipeline::start(&config);
    wait_committed(&mut pipeline, &path, master_version(&server));
    // via the binlog: an insert, a row of NULLs, and an update that rewrites every column.
    db.exec(&format!("INSERT INTO alltypes VALUES {ROW_MAX}")).unwrap();
    db.exec("INSERT INTO alltypes (id) VALUES (3)").unwrap();
    db.exec(&format!("INSERT INTO alltypes VALUES {}", ROW_MIN.replacen("(1,", "(4,", 1))).unwrap();
    db.exec(&format!("DELETE FROM alltypes WHERE id = 4; INSERT INTO alltypes VALUES {}", ROW_MAX.replacen("(2,", "(4,", 1)))
        .unwrap();
    wait_committed(&mut pipeline, &path, master_version(&server));
    assert!(pipeline.stop().success());

    let json = read(&python, &["rows", path.to_str().unwrap()]);
    let schema: Json = serde_json::from_str(json["schema"].as_str().unwrap()).unwrap();
    for (name, _, _, delta_type) in COLUMNS {
        let field = schema["fields"].as_array().unwrap().iter().find(|f| f["name"] == *name).unwrap();
        assert_eq!(field["type"], Json::String(delta_type.to_string()), "Delta type of {name}");
    }
    let mut rows: Vec<&serde_json::Map<String, Json>> = json["rows"].as_array().unwrap().iter().map(|r| r.as_object().unwrap()).collect();
    rows.sort_by_key(|r| r["id"].as_i64().unwrap());
    let expected = server_rows(&server, db.name());
    assert_eq!(rows.len(), expected.len());
    for (i, (delta_row, server_row)) in rows.iter().zip(&expected).enumerate() {
        for (c, (name, ..)) in COLUMNS.iter().enumerate() {
            check_value(name, &delta_row[*name], &server_row[c], i + 1);
        }
    }
}
