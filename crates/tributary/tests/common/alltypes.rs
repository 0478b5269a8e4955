//! One table with every MariaDB type of docs/types.md, the rows that exercise
//! their edges, and the comparison of what a Delta reader returns with what
//! the server returns for the same row.

use serde_json::Value as Json;
use tributary_testkit::{MariaDb, TestDatabase};

/// A column of the all-types table.
pub struct TypeCase {
    pub name: &'static str,
    /// Type in `CREATE TABLE`.
    pub ddl: &'static str,
    /// Server expression rendering the expected value as text.
    pub server_expr: &'static str,
    /// Delta type (delta-rs schema JSON) of docs/types.md.
    pub delta_type: &'static str,
    /// Spark SQL type of docs/types.md.
    pub spark_type: &'static str,
}

const fn case(
    name: &'static str,
    ddl: &'static str,
    server_expr: &'static str,
    delta_type: &'static str,
    spark_type: &'static str,
) -> TypeCase {
    TypeCase { name, ddl, server_expr, delta_type, spark_type }
}

pub const TYPES: &[TypeCase] = &[
    case("ti", "TINYINT", "ti", "long", "bigint"),
    case("tiu", "TINYINT UNSIGNED", "tiu", "long", "bigint"),
    case("si", "SMALLINT", "si", "long", "bigint"),
    case("siu", "SMALLINT UNSIGNED", "siu", "long", "bigint"),
    case("mi", "MEDIUMINT", "mi", "long", "bigint"),
    case("miu", "MEDIUMINT UNSIGNED", "miu", "long", "bigint"),
    case("i", "INT", "i", "long", "bigint"),
    case("iu", "INT UNSIGNED", "iu", "long", "bigint"),
    case("bi", "BIGINT", "bi", "long", "bigint"),
    case("biu", "BIGINT UNSIGNED", "biu", "decimal(20,0)", "decimal(20,0)"),
    case("dec1", "DECIMAL(10,2)", "dec1", "decimal(10,2)", "decimal(10,2)"),
    case("dec2", "DECIMAL(38,10)", "dec2", "decimal(38,10)", "decimal(38,10)"),
    case("dec3", "DECIMAL(65,30)", "dec3", "string", "string"),
    case("fl", "FLOAT", "fl", "float", "float"),
    case("db", "DOUBLE", "db", "double", "double"),
    case("d", "DATE", "d", "date", "date"),
    case("dt0", "DATETIME", "dt0", "timestamp_ntz", "timestamp_ntz"),
    case("dt6", "DATETIME(6)", "dt6", "timestamp_ntz", "timestamp_ntz"),
    case("ts0", "TIMESTAMP NULL", "ts0", "timestamp", "timestamp"),
    case("ts3", "TIMESTAMP(3) NULL", "ts3", "timestamp", "timestamp"),
    case("tm", "TIME", "tm", "string", "string"),
    case("tm2", "TIME(2)", "tm2", "string", "string"),
    case("y", "YEAR", "y", "long", "bigint"),
    case("c", "CHAR(5)", "c", "string", "string"),
    case("vc", "VARCHAR(20)", "vc", "string", "string"),
    case("tx", "TEXT", "tx", "string", "string"),
    case("bn", "BINARY(4)", "LOWER(HEX(bn))", "binary", "binary"),
    case("vb", "VARBINARY(10)", "LOWER(HEX(vb))", "binary", "binary"),
    case("bl", "BLOB", "LOWER(HEX(bl))", "binary", "binary"),
    case("e", "ENUM('small','medium','large')", "e", "string", "string"),
    case("st", "SET('a','b','c')", "st", "string", "string"),
    case("j", "JSON", "j", "string", "string"),
    case("b1", "BIT(1)", "b1+0", "boolean", "boolean"),
    case("b10", "BIT(10)", "LOWER(LPAD(HEX(b10),4,'0'))", "binary", "binary"),
    case("g", "GEOMETRY", "LOWER(HEX(ST_AsWKB(g)))", "binary", "binary"),
    case("u", "UUID", "u", "string", "string"),
    case("i4", "INET4", "i4", "string", "string"),
    case("i6", "INET6", "i6", "string", "string"),
];

/// Minimum values (and non-ASCII text) of every column.
pub const ROW_MIN: &str = "(1, -128, 0, -32768, 0, -8388608, 0, -2147483648, 0, -9223372036854775808, 0, \
    -12345678.91, -1234567890123456789012345678.0123456789, -12345678901234567890123456789012345.123456789012345678901234567890, \
    1.5, -2.5e-300, '1000-01-01', '1000-01-01 00:00:00', '9999-12-31 23:59:59.999999', '1970-01-01 00:00:01', \
    '2038-01-19 03:14:07.999', '-838:59:59', '12:34:56.78', 1901, 'ab', 'héllo 🦀', 'text', 0x00ff10ab, 0x0102, \
    0xdeadbeef, 'large', 'a,c', '{\"k\": [1, 2]}', b'1', b'1010100101', ST_GeomFromText('POINT(1 2)'), \
    '00000000-0000-0000-0000-000000000000', '0.0.0.0', '::')";
/// Maximum values (and empty strings / blobs) of every column.
pub const ROW_MAX: &str = "(2, 127, 255, 32767, 65535, 8388607, 16777215, 2147483647, 4294967295, 9223372036854775807, \
    18446744073709551615, 99999999.99, 9999999999999999999999999999.9999999999, 0.000000000000000000000000000001, \
    -0.25, 1.7976931348623157e308, '9999-12-31', '2024-02-29 13:14:15', '2024-02-29 13:14:15.000001', \
    '2024-02-29 13:14:15', '2024-02-29 13:14:15.123', '838:59:59', '-00:00:00.01', 2155, 'abcde', '', REPEAT('x', 300), \
    0x00000000, X'', X'', 'small', '', '[]', b'0', b'0000000001', ST_GeomFromText('LINESTRING(0 0, 1 1.5)'), \
    'ffffffff-ffff-ffff-ffff-ffffffffffff', '255.255.255.255', '::ffff:192.0.2.1')";

/// Creates `alltypes (id INT PRIMARY KEY, <every type>)`.
pub fn create_table(db: &TestDatabase<'_>) {
    let cols: Vec<String> = TYPES.iter().map(|c| format!("{} {}", c.name, c.ddl)).collect();
    db.exec(&format!("CREATE TABLE alltypes (id INT PRIMARY KEY, {})", cols.join(", "))).unwrap();
}

/// The server's rendering of every row (ordered by id), NULL as `None`.
pub fn server_rows(server: &MariaDb, db: &str) -> Vec<Vec<Option<String>>> {
    let exprs: Vec<&str> = TYPES.iter().map(|c| c.server_expr).collect();
    let sql = format!("SET time_zone = '+00:00'; SELECT {} FROM `{db}`.alltypes ORDER BY id", exprs.join(", "));
    super::source_lines(server, &sql)
        .iter()
        .map(|line| line.split('\t').map(|v| (v != "NULL").then(|| v.to_string())).collect())
        .collect()
}

/// Asserts that `got` (as a reader returned it) is the server's `want` for `column` of row `id`.
pub fn assert_same(reader: &str, column: &str, got: &Json, want: &Option<String>, id: &Json) {
    let Some(want) = want else {
        assert!(got.is_null(), "row {id} {column}: server NULL, {reader} {got}");
        return;
    };
    let text = match got {
        Json::Null => panic!("row {id} {column}: server {want}, {reader} null"),
        Json::Bool(b) => (if *b { "1" } else { "0" }).to_string(),
        Json::String(s) => s.clone(),
        other => other.to_string(),
    };
    let same = match column {
        "fl" | "db" => text.parse::<f64>().unwrap() == want.parse::<f64>().unwrap(),
        "dt0" | "dt6" | "ts0" | "ts3" => datetime(&text) == datetime(want),
        "j" => serde_json::from_str::<Json>(&text).unwrap() == serde_json::from_str::<Json>(want).unwrap(),
        _ => text == *want,
    };
    assert!(same, "row {id} column {column}: server {want:?}, {reader} {text:?}");
}

/// `YYYY-MM-DD HH:MM:SS.ffffff` from the server's or a reader's rendering.
fn datetime(text: &str) -> String {
    let t = text.replace('T', " ").replace("+00:00", "").replace('Z', "");
    let (main, frac) = t.split_once('.').unwrap_or((&t, ""));
    format!("{main}.{frac:0<6}")
}
