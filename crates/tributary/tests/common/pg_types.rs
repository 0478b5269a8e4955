//! One PostgreSQL table with a column of every type docs/types.md maps, the
//! rows that exercise their edges (NaN, ±Infinity, BC and infinite dates,
//! quoted array elements, a TOASTed text), and the comparison of what a
//! Delta reader returns with what the server computes for the same row.
//!
//! Dates and timestamps are compared as days / microseconds since the epoch,
//! on every side: Python's `datetime` (under both pyarrow and PySpark) cannot
//! hold a BC date, so the readers return the stored integers and the server
//! computes them with its own date arithmetic.

use super::pg::sql;
use serde_json::Value as Json;
use std::path::Path;
use std::process::Command;
use tributary_testkit::postgres::PgDatabase;

/// How a column's values are read and compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Int,
    Float32,
    Float64,
    /// Compared as the exact decimal text.
    Decimal,
    Bool,
    Text,
    /// Hex of the bytes.
    Bytes,
    /// Days since 1970-01-01.
    Date,
    /// Microseconds since 1970-01-01 00:00:00 (UTC for `timestamp`, wall clock for `timestamp_ntz`).
    Timestamp,
    TimestampNtz,
    /// A JSON array (the server renders it with `to_json`).
    Array,
}

/// A column of the all-types table.
pub struct PgTypeCase {
    pub name: &'static str,
    /// Type in `CREATE TABLE`.
    pub ddl: &'static str,
    /// Server expression rendering the expected stored value as text (NULL where Tributary stores null).
    pub expr: &'static str,
    /// Delta type (delta-rs schema JSON; arrays as `array<element>`) of docs/types.md.
    pub delta_type: &'static str,
    /// Spark SQL type of docs/types.md.
    pub spark_type: &'static str,
    pub kind: Kind,
    /// SQL literals of rows A, B and C (row D is all NULL).
    pub values: [&'static str; 3],
}

const fn case(
    name: &'static str,
    ddl: &'static str,
    expr: &'static str,
    delta_type: &'static str,
    spark_type: &'static str,
    kind: Kind,
    values: [&'static str; 3],
) -> PgTypeCase {
    PgTypeCase { name, ddl, expr, delta_type, spark_type, kind, values }
}

/// The enum and the domains the table uses: a domain maps as its base type,
/// through a chain of domains, for a column and for an array's elements.
pub const TYPE_DDL: &str = "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy'); \
    CREATE DOMAIN posint AS integer CHECK (VALUE > 0); CREATE DOMAIN smallpos AS posint; \
    CREATE DOMAIN price AS numeric(10,2); CREATE DOMAIN price2 AS price";

/// Time zone of the database (so of the pipeline's sessions, the snapshot's and the
/// walsender's): `timestamptz` arrives printed with +05:45, or +05:41:16 (local mean
/// time) before 1920.
pub const DATABASE_TIME_ZONE: &str = "Asia/Kathmandu";
/// Time zone of the session that inserts: literals without an offset are St. John's time (-03:30).
pub const INSERT_TIME_ZONE: &str = "America/St_Johns";

/// A text that PostgreSQL stores out of line (TOAST): 9,600 hex digits.
const BIG_TEXT: &str = "(SELECT string_agg(md5(g::text), '') FROM generate_series(1, 300) g)";

use Kind::*;

pub const TYPES: &[PgTypeCase] = &[
    case("i2", "smallint", "i2", "long", "bigint", Int, ["-32768", "32767", "0"]),
    case("i4", "integer", "i4", "long", "bigint", Int, ["2147483647", "-2147483648", "42"]),
    case("i8", "bigint", "i8", "long", "bigint", Int, ["-9223372036854775808", "9223372036854775807", "0"]),
    case(
        "n102",
        "numeric(10,2)",
        "NULLIF(n102, 'NaN')",
        "decimal(10,2)",
        "decimal(10,2)",
        Decimal,
        ["-12345678.91", "'NaN'", "99999999.99"],
    ),
    case(
        "n3810",
        "numeric(38,10)",
        "n3810",
        "decimal(38,10)",
        "decimal(38,10)",
        Decimal,
        ["1234567890123456789012345678.0123456789", "-9999999999999999999999999999.9999999999", "0.5"],
    ),
    case(
        "nwide",
        "numeric(50,20)",
        "nwide",
        "string",
        "string",
        Text,
        ["123456789012345678901234567890.12345678901234567890", "-1", "0"],
    ),
    case("nu", "numeric", "nu", "string", "string", Text, ["12.3400", "'NaN'", "'-Infinity'"]),
    case("nu2", "numeric", "nu2", "string", "string", Text, ["'Infinity'", "-0.000000000000000000001", "1e40"]),
    case("f4", "real", "f4", "float", "float", Float32, ["1.5", "'NaN'", "'-Infinity'"]),
    case("f4max", "real", "f4max", "float", "float", Float32, ["3.4028235e38", "'Infinity'", "-1.17549435e-38"]),
    case("f8", "double precision", "f8", "double", "double", Float64, ["-2.5e-300", "'Infinity'", "'NaN'"]),
    case(
        "f8max",
        "double precision",
        "f8max",
        "double",
        "double",
        Float64,
        ["1.7976931348623157e308", "'-Infinity'", "0.1"],
    ),
    case("b", "boolean", "b", "boolean", "boolean", Bool, ["true", "false", "false"]),
    case(
        "t",
        "text",
        "t",
        "string",
        "string",
        Text,
        [r#"'héllo 🦀 "quoted" back\slash, tab	end'"#, "''", "E'line1\\nline2'"],
    ),
    case("vc", "varchar(20)", "vc", "string", "string", Text, ["'varchar'", "' lead and trail '", "'x'"]),
    // char(n) keeps its padding: `c::text` would strip it, concat() prints it.
    case(
        "c",
        "char(5)",
        "CASE WHEN c IS NOT NULL THEN concat(c) END",
        "string",
        "string",
        Text,
        ["'ab'", "''", "'abcde'"],
    ),
    case("by", "bytea", "encode(by, 'hex')", "binary", "binary", Bytes, [r"'\x00ff10ab'", r"'\x'", r"'\x5c'"]),
    case(
        "d",
        "date",
        "CASE WHEN isfinite(d) THEN d - DATE '1970-01-01' END",
        "date",
        "date",
        Date,
        ["'0044-03-15 BC'", "'infinity'", "'2024-02-29'"],
    ),
    case(
        "d2",
        "date",
        "CASE WHEN isfinite(d2) THEN d2 - DATE '1970-01-01' END",
        "date",
        "date",
        Date,
        ["'4714-11-24 BC'", "'-infinity'", "'5874897-12-31'"],
    ),
    case(
        "tm",
        "time",
        "to_char(tm, 'HH24:MI:SS.US')",
        "string",
        "string",
        Text,
        ["'13:45:06.123456'", "'24:00:00'", "'00:00:00'"],
    ),
    case(
        "tm3",
        "time(3)",
        "to_char(tm3, 'HH24:MI:SS.MS')",
        "string",
        "string",
        Text,
        ["'12:34:56.78'", "'23:59:59.999'", "'00:00:00.001'"],
    ),
    case("ttz", "timetz", "ttz", "string", "string", Text, ["'12:00:00.5+05:45'", "'00:00:00-12'", "'23:59:59+14'"]),
    case(
        "ts",
        "timestamp",
        "CASE WHEN isfinite(ts) THEN (EXTRACT(EPOCH FROM ts) * 1000000)::bigint END",
        "timestamp_ntz",
        "timestamp_ntz",
        TimestampNtz,
        ["'2024-02-29 13:14:15.000001'", "'-infinity'", "'0044-03-15 12:30:00 BC'"],
    ),
    case(
        "tstz",
        "timestamptz",
        "CASE WHEN isfinite(tstz) THEN (EXTRACT(EPOCH FROM tstz) * 1000000)::bigint END",
        "timestamp",
        "timestamp",
        Timestamp,
        ["'2024-01-02 03:04:05.5'", "'infinity'", "'1900-06-01 12:00:00+00'"],
    ),
    case(
        "tstz2",
        "timestamptz(3)",
        "CASE WHEN isfinite(tstz2) THEN (EXTRACT(EPOCH FROM tstz2) * 1000000)::bigint END",
        "timestamp",
        "timestamp",
        Timestamp,
        ["'1969-12-31 23:59:59.999+00'", "'-infinity'", "'0044-03-15 10:00:00+01 BC'"],
    ),
    case(
        "iv",
        "interval",
        "iv",
        "string",
        "string",
        Text,
        ["'1 year 2 mons 3 days -04:05:06.5'", "'00:00:00'", "'-178000000 years'"],
    ),
    case(
        "u",
        "uuid",
        "u",
        "string",
        "string",
        Text,
        [
            "'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'",
            "'00000000-0000-0000-0000-000000000000'",
            "'ffffffff-ffff-ffff-ffff-ffffffffffff'",
        ],
    ),
    case("j", "json", "j", "string", "string", Text, [r#"'{"b": 1,  "a": [1, 2]}'"#, "'[]'", r#"'"str"'"#]),
    case(
        "jb",
        "jsonb",
        "jb",
        "string",
        "string",
        Text,
        [r#"'{"bb": [1, 2], "a": 1, "a": 2}'"#, "'null'", r#"'{"é": "🦀"}'"#],
    ),
    case(
        "ia",
        "integer[]",
        "to_json(ia)",
        "array<long>",
        "array<bigint>",
        Array,
        ["'{1,NULL,-3}'", "'{}'", "'{NULL}'"],
    ),
    case(
        "ta",
        "text[]",
        "to_json(ta)",
        "array<string>",
        "array<string>",
        Array,
        [r#"ARRAY['a b', 'with "quote"', 'back\slash', NULL, 'NULL', '', 'é', '{x,y}', ' pad ']"#, "'{}'", "'{plain}'"],
    ),
    case("e", "mood", "e", "string", "string", Text, ["'happy'", "'sad'", "'ok'"]),
    case(
        "ip",
        "inet",
        "CASE WHEN ip IS NOT NULL THEN concat(ip) END",
        "string",
        "string",
        Text,
        ["'192.168.0.1/24'", "'::1'", "'10.0.0.1'"],
    ),
    case(
        "cn",
        "cidr",
        "CASE WHEN cn IS NOT NULL THEN concat(cn) END",
        "string",
        "string",
        Text,
        ["'10.1.0.0/16'", "'2001:db8::/32'", "'192.168.100.128/25'"],
    ),
    case("dint", "smallpos", "dint", "long", "bigint", Int, ["5", "1", "2147483647"]),
    case(
        "dprice",
        "price2",
        "NULLIF(dprice, 'NaN')",
        "decimal(10,2)",
        "decimal(10,2)",
        Decimal,
        ["12.5", "'NaN'", "-0.01"],
    ),
    case(
        "dints",
        "posint[]",
        "to_json(dints)",
        "array<long>",
        "array<bigint>",
        Array,
        ["'{1,2,NULL}'", "'{}'", "'{2147483647}'"],
    ),
    case(
        "dprices",
        "price[]",
        "to_json(dprices::text[])",
        "array<decimal(10,2)>",
        "array<decimal(10,2)>",
        Array,
        ["'{1.5,-2.25,NULL}'", "'{}'", "'{99999999.99}'"],
    ),
    case("tb", "text", "tb", "string", "string", Text, [BIG_TEXT, "'small'", "''"]),
];

/// Creates the enum and `alltypes (id INT PRIMARY KEY, <every type>)` as the replication role.
pub fn create_table(db: &PgDatabase<'_>) {
    let cols: Vec<String> = TYPES.iter().map(|c| format!("{} {}", c.name, c.ddl)).collect();
    sql(db, &format!("{TYPE_DDL}; CREATE TABLE alltypes (id INT PRIMARY KEY, {})", cols.join(", ")));
}

/// `INSERT` of row `variant` (0 = A, 1 = B, 2 = C, 3 = all NULL) with `id`,
/// in a session whose time zone is [`INSERT_TIME_ZONE`].
pub fn insert_sql(id: i64, variant: usize) -> String {
    let names: Vec<&str> = TYPES.iter().map(|c| c.name).collect();
    if variant == 3 {
        return format!("INSERT INTO alltypes (id) VALUES ({id})");
    }
    let values: Vec<&str> = TYPES.iter().map(|c| c.values[variant]).collect();
    format!(
        "SET TimeZone = '{INSERT_TIME_ZONE}'; INSERT INTO alltypes (id, {}) VALUES ({id}, {})",
        names.join(", "),
        values.join(", ")
    )
}

/// `UPDATE` that sets every column of row `id` to the values of row `from`.
pub fn copy_row_sql(id: i64, from: i64) -> String {
    let names: Vec<&str> = TYPES.iter().map(|c| c.name).collect();
    format!(
        "UPDATE alltypes SET ({cols}) = (SELECT {cols} FROM alltypes WHERE id = {from}) WHERE id = {id}",
        cols = names.join(", ")
    )
}

/// A cell in a form both sides can be compared in: `None` is null.
pub type Cell = Option<Json>;

/// The server's expected stored value of every column, by id (ascending).
pub fn server_rows(db: &PgDatabase<'_>) -> Vec<(i64, Vec<Cell>)> {
    let exprs: Vec<String> = TYPES.iter().map(|c| format!("({})::text", c.expr)).collect();
    let text = sql(
        db,
        &format!(
            "SELECT COALESCE(json_agg(json_build_array(id, {}) ORDER BY id), '[]') FROM alltypes",
            exprs.join(", ")
        ),
    );
    let rows: Json = serde_json::from_str(text.trim()).expect("server rows as JSON");
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let r = r.as_array().unwrap();
            let cells = TYPES.iter().zip(&r[1..]).map(|(case, v)| server_cell(case, v)).collect();
            (r[0].as_i64().unwrap(), cells)
        })
        .collect()
}

/// A server text value in the comparable form of its kind.
fn server_cell(case: &PgTypeCase, v: &Json) -> Cell {
    let text = v.as_str()?;
    Some(match case.kind {
        Int | Date | Timestamp | TimestampNtz => Json::from(text.parse::<i64>().unwrap()),
        Array => serde_json::from_str(text).unwrap(),
        Bool => Json::Bool(text == "true"),
        _ => Json::String(text.to_string()),
    })
}

/// A reader's value (see [`READER_PY`] and scripts/spark_verifier.py) in the comparable form.
pub fn reader_cell(case: &PgTypeCase, v: &Json) -> Cell {
    if v.is_null() {
        return None;
    }
    Some(match case.kind {
        Float32 | Float64 => Json::String(float_text(case.kind, v)),
        Decimal | Text | Bytes => Json::String(v.as_str().unwrap_or_else(|| panic!("{}: {v}", case.name)).into()),
        _ => v.clone(),
    })
}

/// Floats as the text of the nearest value of their width, so that a server's
/// `3.4028235e+38` equals a reader's `3.4028234663852886e+38` (the same f32).
fn float_text(kind: Kind, v: &Json) -> String {
    let x: f64 = match v {
        Json::String(s) => s.parse().unwrap_or_else(|_| panic!("float {s}")),
        Json::Number(n) => n.as_f64().unwrap(),
        other => panic!("not a float: {other}"),
    };
    if kind == Float32 {
        format!("{:?}", x as f32)
    } else {
        format!("{x:?}")
    }
}

/// Compares a server cell with the reader's for `column` of row `id`; the mismatch, described.
pub fn check_cell(reader: &str, case: &PgTypeCase, id: i64, got: &Json, want: &Cell) -> Result<(), String> {
    let got = reader_cell(case, got);
    let want = match (case.kind, want) {
        (Float32 | Float64, Some(w)) => Some(Json::String(float_text(case.kind, w))),
        (_, w) => w.clone(),
    };
    if got == want {
        return Ok(());
    }
    let show = |c: &Cell| c.as_ref().map_or("null".to_string(), |v| cut(&v.to_string()));
    Err(format!(
        "{reader}: row {id} column {} ({}): server {}, reader {}",
        case.name,
        case.ddl,
        show(&want),
        show(&got)
    ))
}

/// At most 80 characters of a value, for messages.
fn cut(text: &str) -> String {
    if text.chars().count() <= 80 {
        text.to_string()
    } else {
        format!("{}…", text.chars().take(80).collect::<String>())
    }
}

/// A Delta schema field type as `short`, `decimal(10,2)`, `array<integer>`.
pub fn delta_type_name(t: &Json) -> String {
    match t {
        Json::String(s) => s.clone(),
        Json::Object(o) if o["type"] == "array" => format!("array<{}>", delta_type_name(&o["elementType"])),
        other => other.to_string(),
    }
}

/// An independent reader (delta-rs Python bindings) that, unlike
/// scripts/delta_reader.py, survives BC dates and infinite floats: dates and
/// timestamps are returned as the stored integers, NaN / ±Infinity as strings.
/// `rows <path>` or `cdf <path> <from>`; prints `{"version", "schema", "rows"}`.
pub const READER_PY: &str = r#"
import decimal, json, math, os, sys
import pyarrow as pa
from deltalake import DeltaTable

def raw(col):
    t = col.type
    if pa.types.is_date32(t):
        return col.cast(pa.int32())
    if pa.types.is_timestamp(t):
        return col.cast(pa.int64())
    return col

def canon(v):
    if isinstance(v, float):
        if math.isnan(v):
            return "NaN"
        if math.isinf(v):
            return "Infinity" if v > 0 else "-Infinity"
        return v
    if isinstance(v, decimal.Decimal):
        return format(v, "f")
    if isinstance(v, (bytes, bytearray)):
        return bytes(v).hex()
    if isinstance(v, list):
        return [canon(x) for x in v]
    return v

cmd, path = sys.argv[1], sys.argv[2]
dt = DeltaTable(path)
if cmd == "rows" and "deletionVectors" in (dt.protocol().reader_features or []):
    # The DataFusion scan applies deletion vectors (to_pyarrow_table refuses them).
    from deltalake import QueryBuilder
    table = pa.RecordBatchReader.from_stream(QueryBuilder().register("t", dt).execute("SELECT * FROM t")).read_all()
elif cmd == "rows":
    table = dt.to_pyarrow_table()
else:
    table = pa.RecordBatchReader.from_stream(dt.load_cdf(starting_version=int(sys.argv[3]))).read_all()
cols = {name: raw(table.column(name)).to_pylist() for name in table.column_names}
rows = [{k: canon(cols[k][i]) for k in cols} for i in range(table.num_rows)]
print(json.dumps({"version": dt.version(), "schema": json.loads(dt.schema().to_json()), "rows": rows}, allow_nan=False))
sys.stdout.flush()
os._exit(0)
"#;

/// Runs [`READER_PY`]; returns (Delta version, schema fields, rows).
pub fn read_raw(python: &Path, args: &[&str]) -> (i64, Vec<Json>, Vec<serde_json::Map<String, Json>>) {
    let out = Command::new(python).args(["-c", READER_PY]).args(args).output().expect("run the Python reader");
    assert!(out.status.success(), "reader {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    let json: Json = serde_json::from_slice(&out.stdout).expect("reader JSON");
    let rows = json["rows"].as_array().unwrap().iter().map(|r| r.as_object().unwrap().clone()).collect();
    (json["version"].as_i64().unwrap(), json["schema"]["fields"].as_array().unwrap().clone(), rows)
}

/// The Spark SQL select list reading every column comparably: dates as
/// `unix_date`, timestamps as `unix_micros` (PySpark cannot hold BC dates either).
pub fn spark_select() -> String {
    let mut cols = vec!["id".to_string()];
    for c in TYPES {
        cols.push(match c.kind {
            Date => format!("unix_date({0}) AS {0}", c.name),
            Timestamp => format!("unix_micros({0}) AS {0}", c.name),
            TimestampNtz => format!("unix_micros(CAST({0} AS TIMESTAMP)) AS {0}", c.name),
            _ => c.name.to_string(),
        });
    }
    cols.join(", ")
}
