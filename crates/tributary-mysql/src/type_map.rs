//! MySQL / MariaDB column types (as `information_schema.COLUMNS` spells them)
//! to Tributary [`ColumnType`]s; docs/types.md is the table this implements.

use tributary_core::{Column, ColumnType, TableId};

use crate::decoder::values::is_spatial;
use crate::error::MySqlError;

/// Largest DECIMAL precision stored as a Delta decimal; wider ones become text.
pub const MAX_DECIMAL_PRECISION: u8 = 38;

/// Maps one column from its `DATA_TYPE`, `COLUMN_TYPE` and `IS_NULLABLE`
/// (`"YES"` / `"NO"`, or anything else treated as `NO`).
pub fn map_column(
    table: &TableId,
    name: &str,
    data_type: &str,
    column_type: &str,
    is_nullable: &str,
) -> Result<Column, MySqlError> {
    let data_type_lower = data_type.trim().to_ascii_lowercase();
    let column_type_lower = column_type.trim().to_ascii_lowercase();
    let mapped = map_type(&data_type_lower, &column_type_lower).map_err(|reason| MySqlError::UnsupportedType {
        table: table.to_string(),
        column: name.to_string(),
        source_type: column_type.to_string(),
        reason,
    })?;
    Ok(Column {
        name: name.to_string(),
        data_type: mapped,
        nullable: is_nullable.eq_ignore_ascii_case("YES"),
        source_type: column_type.to_string(),
        source_id: None,
    })
}

/// The mapping itself, on lower-cased input; `Err` is the reason for a refusal.
fn map_type(data_type: &str, column_type: &str) -> Result<ColumnType, String> {
    let unsigned = is_unsigned(column_type);
    let t = match data_type {
        "tinyint" if unsigned => ColumnType::Int16,
        "tinyint" => ColumnType::Int8,
        "smallint" if unsigned => ColumnType::Int32,
        "smallint" => ColumnType::Int16,
        "mediumint" => ColumnType::Int32,
        "int" | "integer" if unsigned => ColumnType::Int64,
        "int" | "integer" => ColumnType::Int32,
        "bigint" if unsigned => ColumnType::UInt64,
        "bigint" => ColumnType::Int64,
        "decimal" | "numeric" | "fixed" => decimal_type(column_type)?,
        "float" => ColumnType::Float32,
        "double" | "real" | "double precision" => ColumnType::Float64,
        "date" => ColumnType::Date,
        "datetime" => ColumnType::TimestampNtz,
        "timestamp" => ColumnType::Timestamp,
        "time" => ColumnType::Time { fsp: fractional_digits(column_type)? },
        "year" => ColumnType::Int16,
        "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" | "enum" | "set" => ColumnType::Text,
        "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => ColumnType::Bytes,
        "json" => ColumnType::Json,
        // MariaDB's UUID (10.7+), INET4 (10.10+), INET6 (10.5+): their text form.
        "uuid" | "inet4" | "inet6" => ColumnType::Text,
        "bit" => bit_type(column_type)?,
        t if is_spatial(t) => ColumnType::Bytes,
        "vector" => ColumnType::Array { element: Box::new(ColumnType::Float32) },
        other => return Err(format!("type '{other}' has no mapping; exclude the table with source.exclude")),
    };
    Ok(t)
}

/// `int(10) unsigned`, `bigint unsigned zerofill`, `decimal(5,2) unsigned`.
fn is_unsigned(column_type: &str) -> bool {
    column_type.split_whitespace().any(|w| w == "unsigned" || w == "zerofill")
}

/// The numbers inside the first parentheses: `decimal(10,2)` → `[10, 2]`;
/// none when there are no parentheses.
fn type_arguments(column_type: &str) -> Result<Vec<u32>, String> {
    let Some(open) = column_type.find('(') else { return Ok(Vec::new()) };
    let close =
        column_type[open..].find(')').map(|i| open + i).ok_or_else(|| format!("unbalanced '(' in '{column_type}'"))?;
    column_type[open + 1..close]
        .split(',')
        .map(|n| n.trim().parse::<u32>().map_err(|_| format!("cannot read the number '{n}' in '{column_type}'")))
        .collect()
}

/// `decimal(p,s)`: a Delta decimal up to precision 38, text beyond.
fn decimal_type(column_type: &str) -> Result<ColumnType, String> {
    let args = type_arguments(column_type)?;
    // MySQL's DECIMAL without arguments is DECIMAL(10,0); information_schema always prints them.
    let precision = args.first().copied().unwrap_or(10);
    let scale = args.get(1).copied().unwrap_or(0);
    if precision > u32::from(MAX_DECIMAL_PRECISION) {
        return Ok(ColumnType::Text);
    }
    if scale > precision {
        return Err(format!("scale {scale} exceeds precision {precision}"));
    }
    // Both fit u8: precision <= 38 and scale <= precision.
    Ok(ColumnType::Decimal { precision: precision as u8, scale: scale as u8 })
}

/// `time(3)` → 3; `time` → 0.
fn fractional_digits(column_type: &str) -> Result<u8, String> {
    let fsp = type_arguments(column_type)?.first().copied().unwrap_or(0);
    if fsp > 6 {
        return Err(format!("fractional seconds precision {fsp} is above 6"));
    }
    Ok(fsp as u8)
}

/// `bit(1)` is a boolean, wider bit fields are bytes (big-endian, as the server sends them).
fn bit_type(column_type: &str) -> Result<ColumnType, String> {
    let width = type_arguments(column_type)?.first().copied().unwrap_or(1);
    Ok(if width == 1 { ColumnType::Bool } else { ColumnType::Bytes })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(data_type: &str, column_type: &str) -> ColumnType {
        map_column(&TableId::new("db", "t"), "c", data_type, column_type, "YES").unwrap().data_type
    }

    #[test]
    fn signed_integers() {
        assert_eq!(map("tinyint", "tinyint(4)"), ColumnType::Int8);
        assert_eq!(map("tinyint", "tinyint(1)"), ColumnType::Int8);
        assert_eq!(map("smallint", "smallint(6)"), ColumnType::Int16);
        assert_eq!(map("mediumint", "mediumint(9)"), ColumnType::Int32);
        assert_eq!(map("int", "int(11)"), ColumnType::Int32);
        assert_eq!(map("bigint", "bigint(20)"), ColumnType::Int64);
    }

    #[test]
    fn unsigned_integers_widen() {
        assert_eq!(map("tinyint", "tinyint(3) unsigned"), ColumnType::Int16);
        assert_eq!(map("smallint", "smallint unsigned"), ColumnType::Int32);
        assert_eq!(map("mediumint", "mediumint(8) unsigned"), ColumnType::Int32);
        assert_eq!(map("int", "int(10) unsigned"), ColumnType::Int64);
        assert_eq!(map("int", "int(10) unsigned zerofill"), ColumnType::Int64);
        assert_eq!(map("bigint", "bigint(20) unsigned"), ColumnType::UInt64);
    }

    #[test]
    fn decimals_up_to_38_digits_stay_decimal() {
        assert_eq!(map("decimal", "decimal(10,2)"), ColumnType::Decimal { precision: 10, scale: 2 });
        assert_eq!(map("decimal", "decimal(38,0) unsigned"), ColumnType::Decimal { precision: 38, scale: 0 });
        assert_eq!(map("decimal", "decimal(39,4)"), ColumnType::Text);
        assert_eq!(map("decimal", "decimal(65,30)"), ColumnType::Text);
    }

    #[test]
    fn floats() {
        assert_eq!(map("float", "float"), ColumnType::Float32);
        assert_eq!(map("float", "float(7,3) unsigned"), ColumnType::Float32);
        assert_eq!(map("double", "double"), ColumnType::Float64);
    }

    #[test]
    fn dates_and_times() {
        assert_eq!(map("date", "date"), ColumnType::Date);
        assert_eq!(map("datetime", "datetime(6)"), ColumnType::TimestampNtz);
        assert_eq!(map("timestamp", "timestamp"), ColumnType::Timestamp);
        assert_eq!(map("time", "time"), ColumnType::Time { fsp: 0 });
        assert_eq!(map("time", "time(3)"), ColumnType::Time { fsp: 3 });
        assert_eq!(map("year", "year(4)"), ColumnType::Int16);
    }

    #[test]
    fn strings_enums_and_sets_are_text() {
        for (dt, ct) in [
            ("char", "char(3)"),
            ("varchar", "varchar(255)"),
            ("tinytext", "tinytext"),
            ("text", "text"),
            ("mediumtext", "mediumtext"),
            ("longtext", "longtext"),
            ("enum", "enum('a','b')"),
            ("set", "set('x','y')"),
        ] {
            assert_eq!(map(dt, ct), ColumnType::Text, "{ct}");
        }
    }

    #[test]
    fn binary_strings_and_blobs_are_bytes() {
        for (dt, ct) in [
            ("binary", "binary(16)"),
            ("varbinary", "varbinary(64)"),
            ("tinyblob", "tinyblob"),
            ("blob", "blob"),
            ("mediumblob", "mediumblob"),
            ("longblob", "longblob"),
        ] {
            assert_eq!(map(dt, ct), ColumnType::Bytes, "{ct}");
        }
    }

    #[test]
    fn json_is_json_on_mysql_and_text_on_mariadb() {
        assert_eq!(map("json", "json"), ColumnType::Json);
        // MariaDB reports its JSON alias as longtext.
        assert_eq!(map("longtext", "longtext"), ColumnType::Text);
    }

    #[test]
    fn bit_one_is_bool_wider_bits_are_bytes() {
        assert_eq!(map("bit", "bit(1)"), ColumnType::Bool);
        assert_eq!(map("bit", "bit(8)"), ColumnType::Bytes);
        assert_eq!(map("bit", "bit(64)"), ColumnType::Bytes);
    }

    #[test]
    fn spatial_types_are_wkb_bytes() {
        for t in [
            "geometry",
            "point",
            "linestring",
            "polygon",
            "multipoint",
            "multilinestring",
            "multipolygon",
            "geometrycollection",
            "geomcollection",
        ] {
            assert_eq!(map(t, t), ColumnType::Bytes, "{t}");
        }
    }

    #[test]
    fn vector_is_an_array_of_float32() {
        assert_eq!(map("vector", "vector(3)"), ColumnType::Array { element: Box::new(ColumnType::Float32) });
    }

    #[test]
    fn upper_case_input_is_accepted() {
        assert_eq!(map("BIGINT", "BIGINT(20) UNSIGNED"), ColumnType::UInt64);
    }

    #[test]
    fn column_keeps_name_nullability_and_source_type() {
        let c = map_column(&TableId::new("db", "t"), "price", "decimal", "decimal(10,2)", "NO").unwrap();
        assert_eq!(c.name, "price");
        assert!(!c.nullable);
        assert_eq!(c.source_type, "decimal(10,2)");
        assert!(map_column(&TableId::new("db", "t"), "x", "int", "int", "YES").unwrap().nullable);
    }

    #[test]
    fn unknown_types_name_table_column_and_type() {
        let err = map_column(&TableId::new("db", "t"), "addr", "xml", "xml", "YES").unwrap_err().to_string();
        assert!(err.contains("db.t.addr") && err.contains("xml"), "{err}");
    }

    #[test]
    fn mariadb_uuid_inet4_and_inet6_are_text() {
        for t in ["uuid", "inet4", "inet6", "UUID"] {
            let c = map_column(&TableId::new("db", "t"), "x", t, t, "YES").unwrap();
            assert_eq!(c.data_type, ColumnType::Text, "{t}");
        }
    }
}
