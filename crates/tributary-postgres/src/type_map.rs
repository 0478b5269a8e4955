//! PostgreSQL column types (as the catalog describes them: `pg_type.typname`,
//! `atttypmod`, `typcategory`) to Tributary [`ColumnType`]s; the PostgreSQL
//! section of docs/types.md is the table this implements.

use tributary_core::ColumnType;

/// Largest `numeric` precision stored as a Delta decimal; wider ones become text.
pub const MAX_DECIMAL_PRECISION: u8 = 38;

/// `VARHDRSZ`: PostgreSQL adds it to the typmod of `numeric` (and the string types).
const VARHDRSZ: i32 = 4;

/// Largest fractional-seconds precision of `time` / `timestamp` (microseconds).
const MAX_TIME_PRECISION: u8 = 6;

/// One column's type as the catalog describes it; domains are already resolved to their base type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgType {
    /// `pg_type.typname` of the (base) type: `"int4"`, `"numeric"`, `"_text"` (array), an enum's own name, ...
    pub name: String,
    /// `atttypmod` (-1 when unconstrained).
    pub typmod: i32,
    /// `pg_type.typcategory`: `'A'` array, `'E'` enum, `'N'` numeric, `'S'` string, ...
    pub category: char,
    /// For arrays: the element type, carrying the column's `atttypmod` (which
    /// constrains the elements: `numeric(10,2)[]`).
    pub element: Option<Box<PgType>>,
    /// `format_type(atttypid, atttypmod)`, e.g. `"numeric(10,2)"`, `"character varying(50)"`,
    /// `"integer[]"`: for messages and `Column::source_type`.
    pub display: String,
}

/// A column type Tributary cannot store; the message names the type and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "PostgreSQL type '{source_type}' is not supported: {reason}; exclude the table with source.exclude \
     or change the column's type"
)]
pub struct UnsupportedType {
    /// The type as `format_type` spells it.
    pub source_type: String,
    pub reason: String,
}

/// Built-in types whose PostgreSQL text form is stored as it is (`Text`),
/// named here so the choice is deliberate; any other non-array type (composite,
/// extension types such as PostGIS `geometry`) falls back to text as well.
const TEXT_TYPES: &[&str] = &[
    // Character types.
    "text",
    "varchar",
    "bpchar",
    "char",
    "name",
    "citext",
    // Exact or zoned values without a faithful Delta type.
    "timetz",
    "interval",
    "uuid",
    "money",
    "xml",
    // Network addresses.
    "inet",
    "cidr",
    "macaddr",
    "macaddr8",
    // Bit strings, as '0' / '1' characters.
    "bit",
    "varbit",
    // Full-text search.
    "tsvector",
    "tsquery",
    // Geometric types.
    "point",
    "line",
    "lseg",
    "box",
    "path",
    "polygon",
    "circle",
    // Built-in ranges and multiranges.
    "int4range",
    "int8range",
    "numrange",
    "tsrange",
    "tstzrange",
    "daterange",
    "int4multirange",
    "int8multirange",
    "nummultirange",
    "tsmultirange",
    "tstzmultirange",
    "datemultirange",
    // Vectors of the system catalogs: category 'A' but printed space-separated, not as `{...}`.
    "int2vector",
    "oidvector",
    // Log sequence numbers and snapshots.
    "pg_lsn",
    "pg_snapshot",
    "txid_snapshot",
];

/// Maps one column type; see docs/types.md for the reasons behind each choice.
pub fn map_type(t: &PgType) -> Result<ColumnType, UnsupportedType> {
    let mapped = match t.name.as_str() {
        "int2" => ColumnType::Int16,
        "int4" => ColumnType::Int32,
        "int8" => ColumnType::Int64,
        // Unsigned 32-bit: every value fits a long.
        "oid" | "xid" | "cid" => ColumnType::Int64,
        "numeric" => numeric_type(t.typmod),
        "float4" => ColumnType::Float32,
        "float8" => ColumnType::Float64,
        "bool" => ColumnType::Bool,
        "bytea" => ColumnType::Bytes,
        "date" => ColumnType::Date,
        "time" => ColumnType::Time { fsp: time_precision(t.typmod) },
        "timestamp" => ColumnType::TimestampNtz,
        "timestamptz" => ColumnType::Timestamp,
        "json" | "jsonb" => ColumnType::Json,
        name if TEXT_TYPES.contains(&name) => ColumnType::Text,
        _ if t.category == 'A' => array_type(t)?,
        // Enums (their label), composites, ranges of user types, extension types: the text form.
        _ => ColumnType::Text,
    };
    Ok(mapped)
}

/// `numeric(p,s)`: a Delta decimal when `p <= 38` and `0 <= s <= p`, text otherwise.
///
/// Unconstrained `numeric` is text on purpose: it holds any scale (so no
/// fixed Delta scale is exact), `NaN` and `±Infinity`.
fn numeric_type(typmod: i32) -> ColumnType {
    if typmod < VARHDRSZ {
        return ColumnType::Text;
    }
    let packed = typmod - VARHDRSZ;
    let precision = (packed >> 16) & 0xffff;
    // PostgreSQL 15 stores the scale in 11 signed bits (-1000..=1000); older
    // servers only allowed 0..=precision, which reads the same.
    let scale = ((packed & 0x7ff) ^ 1024) - 1024;
    if precision < 1 || precision > i32::from(MAX_DECIMAL_PRECISION) || scale < 0 || scale > precision {
        return ColumnType::Text;
    }
    // Both fit u8: 1 <= precision <= 38 and 0 <= scale <= precision.
    ColumnType::Decimal { precision: precision as u8, scale: scale as u8 }
}

/// `time(p)` → p; unconstrained `time` keeps microseconds.
fn time_precision(typmod: i32) -> u8 {
    match u8::try_from(typmod) {
        Ok(p) => p.min(MAX_TIME_PRECISION),
        Err(_) => MAX_TIME_PRECISION,
    }
}

/// A one-dimensional array of the mapped element type. PostgreSQL has no
/// distinct type for arrays of arrays (`int[][]` is `int[]`), so the element is
/// never itself an array; a value with more dimensions is refused when read.
fn array_type(t: &PgType) -> Result<ColumnType, UnsupportedType> {
    let Some(element) = t.element.as_deref() else {
        return Err(UnsupportedType {
            source_type: t.display.clone(),
            reason: format!("the catalog names no element type for the array type '{}'", t.name),
        });
    };
    // `box[]` separates its elements with ';' (boxes contain ','): keep the whole literal.
    if element.name == "box" {
        return Ok(ColumnType::Text);
    }
    let element = map_type(element)?;
    if matches!(element, ColumnType::Array { .. }) {
        return Err(UnsupportedType {
            source_type: t.display.clone(),
            reason: "an array whose element is itself an array type".to_string(),
        });
    }
    Ok(ColumnType::Array { element: Box::new(element) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pg(name: &str, typmod: i32, category: char) -> PgType {
        PgType { name: name.into(), typmod, category, element: None, display: name.into() }
    }

    fn scalar(name: &str) -> ColumnType {
        map_type(&pg(name, -1, 'X')).unwrap()
    }

    fn numeric(precision: i32, scale: i32) -> ColumnType {
        let typmod = ((precision << 16) | (scale & 0x7ff)) + VARHDRSZ;
        map_type(&pg("numeric", typmod, 'N')).unwrap()
    }

    fn array_of(element: PgType) -> PgType {
        PgType {
            name: format!("_{}", element.name),
            typmod: -1,
            category: 'A',
            display: format!("{}[]", element.display),
            element: Some(Box::new(element)),
        }
    }

    #[test]
    fn integers_keep_their_width() {
        assert_eq!(scalar("int2"), ColumnType::Int16);
        assert_eq!(scalar("int4"), ColumnType::Int32);
        assert_eq!(scalar("int8"), ColumnType::Int64);
        assert_eq!(scalar("oid"), ColumnType::Int64);
    }

    #[test]
    fn constrained_numeric_up_to_38_digits_is_decimal() {
        assert_eq!(numeric(10, 2), ColumnType::Decimal { precision: 10, scale: 2 });
        assert_eq!(numeric(1, 0), ColumnType::Decimal { precision: 1, scale: 0 });
        assert_eq!(numeric(38, 38), ColumnType::Decimal { precision: 38, scale: 38 });
        assert_eq!(numeric(38, 0), ColumnType::Decimal { precision: 38, scale: 0 });
    }

    #[test]
    fn numeric_typmod_is_decoded_like_postgresql() {
        // numeric(10,2) as pg_attribute stores it.
        assert_eq!(map_type(&pg("numeric", 655366, 'N')).unwrap(), ColumnType::Decimal { precision: 10, scale: 2 });
    }

    #[test]
    fn numeric_wider_than_38_digits_is_text() {
        assert_eq!(numeric(39, 2), ColumnType::Text);
        assert_eq!(numeric(1000, 0), ColumnType::Text);
    }

    #[test]
    fn unconstrained_numeric_is_text() {
        assert_eq!(scalar("numeric"), ColumnType::Text);
    }

    #[test]
    fn numeric_with_negative_scale_or_scale_above_precision_is_text() {
        // PostgreSQL 15: numeric(5,-2) rounds to hundreds, numeric(2,5) holds 0.000xx.
        assert_eq!(numeric(5, -2), ColumnType::Text);
        assert_eq!(numeric(2, 5), ColumnType::Text);
    }

    #[test]
    fn floats_and_bool() {
        assert_eq!(scalar("float4"), ColumnType::Float32);
        assert_eq!(scalar("float8"), ColumnType::Float64);
        assert_eq!(scalar("bool"), ColumnType::Bool);
    }

    #[test]
    fn character_types_are_text() {
        for name in ["text", "varchar", "bpchar", "char", "name", "citext"] {
            assert_eq!(map_type(&pg(name, 54, 'S')).unwrap(), ColumnType::Text, "{name}");
        }
    }

    #[test]
    fn bytea_is_bytes() {
        assert_eq!(scalar("bytea"), ColumnType::Bytes);
    }

    #[test]
    fn dates_and_times() {
        assert_eq!(scalar("date"), ColumnType::Date);
        assert_eq!(scalar("time"), ColumnType::Time { fsp: 6 });
        assert_eq!(map_type(&pg("time", 0, 'D')).unwrap(), ColumnType::Time { fsp: 0 });
        assert_eq!(map_type(&pg("time", 3, 'D')).unwrap(), ColumnType::Time { fsp: 3 });
        assert_eq!(scalar("timestamp"), ColumnType::TimestampNtz);
        assert_eq!(map_type(&pg("timestamp", 3, 'D')).unwrap(), ColumnType::TimestampNtz);
        assert_eq!(scalar("timestamptz"), ColumnType::Timestamp);
        assert_eq!(scalar("timetz"), ColumnType::Text);
        assert_eq!(scalar("interval"), ColumnType::Text);
    }

    #[test]
    fn json_and_jsonb_are_json() {
        assert_eq!(scalar("json"), ColumnType::Json);
        assert_eq!(scalar("jsonb"), ColumnType::Json);
    }

    #[test]
    fn enums_are_their_label() {
        assert_eq!(map_type(&pg("mood", -1, 'E')).unwrap(), ColumnType::Text);
    }

    #[test]
    fn other_built_in_types_are_their_text_form() {
        for name in [
            "uuid",
            "inet",
            "cidr",
            "macaddr",
            "macaddr8",
            "money",
            "xml",
            "bit",
            "varbit",
            "tsvector",
            "tsquery",
            "point",
            "polygon",
            "int4range",
            "tstzrange",
            "datemultirange",
            "pg_lsn",
            "int2vector",
        ] {
            assert_eq!(scalar(name), ColumnType::Text, "{name}");
        }
    }

    #[test]
    fn composite_and_unknown_types_are_text() {
        assert_eq!(map_type(&pg("address", -1, 'C')).unwrap(), ColumnType::Text);
        assert_eq!(map_type(&pg("geometry", -1, 'U')).unwrap(), ColumnType::Text);
    }

    #[test]
    fn arrays_map_their_element() {
        let ints = array_of(pg("int4", -1, 'N'));
        assert_eq!(map_type(&ints).unwrap(), ColumnType::Array { element: Box::new(ColumnType::Int32) });
        let texts = array_of(pg("text", -1, 'S'));
        assert_eq!(map_type(&texts).unwrap(), ColumnType::Array { element: Box::new(ColumnType::Text) });
        let enums = array_of(pg("mood", -1, 'E'));
        assert_eq!(map_type(&enums).unwrap(), ColumnType::Array { element: Box::new(ColumnType::Text) });
    }

    #[test]
    fn array_elements_keep_the_column_typmod() {
        // numeric(10,2)[]: the catalog gives the column's typmod to the element too.
        let mut decimals = array_of(pg("numeric", 655366, 'N'));
        decimals.typmod = 655366;
        assert_eq!(
            map_type(&decimals).unwrap(),
            ColumnType::Array { element: Box::new(ColumnType::Decimal { precision: 10, scale: 2 }) }
        );
    }

    #[test]
    fn box_arrays_are_text_because_of_their_delimiter() {
        assert_eq!(map_type(&array_of(pg("box", -1, 'G'))).unwrap(), ColumnType::Text);
    }

    #[test]
    fn an_array_without_element_is_refused_with_its_type_and_the_fix() {
        let broken =
            PgType { name: "_thing".into(), typmod: -1, category: 'A', element: None, display: "thing[]".into() };
        let err = map_type(&broken).unwrap_err();
        assert_eq!(err.source_type, "thing[]");
        let msg = err.to_string();
        assert!(msg.contains("thing[]") && msg.contains("source.exclude"), "{msg}");
    }
}
