//! Typed cell values: no stringly-typed rows.

/// One cell of a row, typed. Which variant a column holds is fixed by its
/// [`crate::ColumnType`]; `Null` fits every column.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// The column was not sent by the source (PostgreSQL unchanged TOAST value):
    /// a sink must keep the stored value and never overwrite it with this.
    Unchanged,
    Bool(bool),
    /// Any signed integer up to 64 bits, and unsigned ones up to 32 bits.
    Int(i64),
    /// An unsigned 64-bit integer (MySQL BIGINT UNSIGNED), kept without overflow.
    UInt(u64),
    Float(f32),
    Double(f64),
    /// An exact decimal: `unscaled * 10^-scale`; precision is the column's.
    Decimal {
        unscaled: i128,
        scale: u8,
    },
    /// Days since 1970-01-01.
    Date(i32),
    /// Time of day or duration, microseconds (MySQL TIME can be negative or > 24 h).
    Time(i64),
    /// An instant: microseconds since the Unix epoch, UTC.
    Timestamp(i64),
    /// A wall-clock date-time without zone: microseconds since 1970-01-01 00:00:00.
    TimestampNtz(i64),
    Text(String),
    Bytes(Vec<u8>),
    /// JSON document as text.
    Json(String),
    Array(Vec<Value>),
}

impl Value {
    /// True for SQL NULL.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
}

/// One row: values in the order of the table schema's columns.
pub type Row = Vec<Value>;
