//! Snapshot result values to core [`Value`]s through the binlog decoder's own
//! per-column [`CellPlan`], so a row reads the same from the snapshot as from
//! the binlog. The snapshot uses the binary protocol (prepared statements)
//! with `time_zone = '+00:00'` and utf8mb4 results, whose values have the
//! shapes the decoder accepts; the differences are SET, which the server
//! sends as its label text where the binlog has a bitmask, and MariaDB's
//! UUID / INET4 / INET6, sent as text where the binlog has their bytes.

use std::sync::Arc;

use mysql_async::Value as MyValue;
use mysql_common::binlog::value::BinlogValue;
use tributary_core::{Row, TableSchema, Value};

use crate::decoder::values::CellPlan;
use crate::decoder::DecodeError;
use crate::error::MySqlError;

/// How one column's values are converted; decided once per table.
#[derive(Debug, Clone)]
enum Cell {
    /// The decoder's conversion.
    Plan(CellPlan),
    /// SET (the server's comma-joined labels), and MariaDB's UUID, INET4 and
    /// INET6 (the server's text form): kept as the server sends them.
    ServerText,
}

impl Cell {
    fn of(source_type: &str, plan: CellPlan) -> Self {
        let word = source_type.trim_start().split(|c: char| c == '(' || c.is_whitespace()).next().unwrap_or("");
        if ["set", "uuid", "inet4", "inet6"].iter().any(|w| word.eq_ignore_ascii_case(w)) {
            Cell::ServerText
        } else {
            Cell::Plan(plan)
        }
    }
}

/// Converts the rows of one table.
#[derive(Debug, Clone)]
pub(crate) struct RowConverter {
    table: Arc<TableSchema>,
    cells: Vec<Cell>,
}

impl RowConverter {
    pub(crate) fn new(table: Arc<TableSchema>) -> Self {
        let cells = table.columns.iter().map(|c| Cell::of(&c.source_type, CellPlan::from_column(c))).collect();
        RowConverter { table, cells }
    }

    /// The first `columns.len()` values of a result row, converted; extra
    /// trailing values (key helpers) are ignored.
    pub(crate) fn convert(&self, values: Vec<MyValue>) -> Result<Row, MySqlError> {
        if values.len() < self.cells.len() {
            return Err(MySqlError::Protocol {
                context: format!("reading a snapshot row of {}", self.table.id),
                detail: format!("{} values for {} columns", values.len(), self.cells.len()),
            });
        }
        let columns = self.table.columns.iter().zip(&self.cells);
        values.into_iter().zip(columns).map(|(value, (column, cell))| self.cell(cell, column, value)).collect()
    }

    fn cell(&self, cell: &Cell, column: &tributary_core::Column, value: MyValue) -> Result<Value, MySqlError> {
        match (cell, value) {
            (_, MyValue::NULL) => Ok(Value::Null),
            (Cell::Plan(plan), value) => Ok(plan.decode(BinlogValue::Value(value), column, &self.table.id)?),
            (Cell::ServerText, MyValue::Bytes(text)) => String::from_utf8(text).map(Value::Text).map_err(|_| {
                MySqlError::Decode(DecodeError::Value {
                    table: self.table.id.to_string(),
                    column: column.name.clone(),
                    source_type: column.source_type.clone(),
                    reason: "the server's text is not UTF-8".into(),
                })
            }),
            (Cell::ServerText, other) => Err(MySqlError::Decode(DecodeError::Value {
                table: self.table.id.to_string(),
                column: column.name.clone(),
                source_type: column.source_type.clone(),
                reason: format!("unexpected value {other:?} for a {}", column.source_type),
            })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tributary_core::{Column, ColumnType, TableId};

    fn convert(data_type: ColumnType, source_type: &str, value: MyValue) -> Result<Value, MySqlError> {
        let column =
            Column { name: "c".into(), data_type, nullable: true, source_type: source_type.into(), source_id: None };
        let table = TableSchema { id: TableId::new("shop", "orders"), columns: vec![column], primary_key: vec![] };
        RowConverter::new(Arc::new(table)).convert(vec![value]).map(|mut row| row.remove(0))
    }

    fn conv(data_type: ColumnType, source_type: &str, value: MyValue) -> Value {
        convert(data_type, source_type, value).unwrap()
    }

    fn b(text: &str) -> MyValue {
        MyValue::Bytes(text.as_bytes().to_vec())
    }

    #[test]
    fn null_is_null_for_every_type() {
        assert_eq!(conv(ColumnType::Int32, "int", MyValue::NULL), Value::Null);
        assert_eq!(conv(ColumnType::Text, "set('a')", MyValue::NULL), Value::Null);
    }

    #[test]
    fn integers_decimals_and_floats_as_the_binary_protocol_sends_them() {
        assert_eq!(
            conv(ColumnType::Int64, "int(10) unsigned", MyValue::UInt(4_000_000_000)),
            Value::Int(4_000_000_000)
        );
        assert_eq!(conv(ColumnType::UInt64, "bigint(20) unsigned", MyValue::UInt(u64::MAX)), Value::UInt(u64::MAX));
        assert_eq!(conv(ColumnType::Int16, "year(4)", MyValue::Int(2155)), Value::Int(2155));
        let d = ColumnType::Decimal { precision: 10, scale: 2 };
        assert_eq!(conv(d, "decimal(10,2)", b("-123.45")), Value::Decimal { unscaled: -12345, scale: 2 });
        assert_eq!(conv(ColumnType::Float32, "float", MyValue::Float(1.5)), Value::Float(1.5));
    }

    #[test]
    fn dates_timestamps_and_zero_dates() {
        assert_eq!(conv(ColumnType::Date, "date", MyValue::Date(1970, 1, 2, 0, 0, 0, 0)), Value::Date(1));
        assert_eq!(conv(ColumnType::Date, "date", MyValue::Date(0, 0, 0, 0, 0, 0, 0)), Value::Null);
        let v = MyValue::Date(2024, 2, 29, 12, 34, 56, 789_012);
        let expected = (19_782 * 86_400 + 12 * 3600 + 34 * 60 + 56) * 1_000_000 + 789_012;
        assert_eq!(conv(ColumnType::TimestampNtz, "datetime(6)", v.clone()), Value::TimestampNtz(expected));
        // The session runs in UTC, so the wall clock the server sends is UTC.
        assert_eq!(conv(ColumnType::Timestamp, "timestamp(6)", v), Value::Timestamp(expected));
        assert_eq!(conv(ColumnType::Timestamp, "timestamp", MyValue::Date(0, 0, 0, 0, 0, 0, 0)), Value::Null);
    }

    #[test]
    fn times_are_text_as_the_server_prints_them() {
        let t = conv(ColumnType::Time { fsp: 0 }, "time", MyValue::Time(true, 34, 22, 59, 59, 0));
        assert_eq!(t, Value::Text("-838:59:59".into()));
        let t2 = conv(ColumnType::Time { fsp: 2 }, "time(2)", MyValue::Time(false, 0, 12, 34, 56, 780_000));
        assert_eq!(t2, Value::Text("12:34:56.78".into()));
    }

    #[test]
    fn enums_sets_and_json_are_text() {
        assert_eq!(conv(ColumnType::Text, "enum('s','l')", b("l")), Value::Text("l".into()));
        assert_eq!(conv(ColumnType::Text, "set('a','b','c')", b("a,c")), Value::Text("a,c".into()));
        assert_eq!(conv(ColumnType::Json, "json", b("{\"a\": 1}")), Value::Json("{\"a\": 1}".into()));
    }

    #[test]
    fn bits_spatial_and_vectors() {
        assert_eq!(conv(ColumnType::Bool, "bit(1)", MyValue::Bytes(vec![1])), Value::Bool(true));
        assert_eq!(
            conv(ColumnType::Bytes, "bit(12)", MyValue::Bytes(vec![0x0f, 0xff])),
            Value::Bytes(vec![0x0f, 0xff])
        );
        let raw = vec![0, 0, 0, 0, 1, 1, 0, 0, 0];
        assert_eq!(conv(ColumnType::Bytes, "point", MyValue::Bytes(raw)), Value::Bytes(vec![1, 1, 0, 0, 0]));
        let a = ColumnType::Array { element: Box::new(ColumnType::Float32) };
        let mut raw = 1.0f32.to_le_bytes().to_vec();
        raw.extend(2.5f32.to_le_bytes());
        assert_eq!(conv(a, "vector(2)", MyValue::Bytes(raw)), Value::Array(vec![Value::Float(1.0), Value::Float(2.5)]));
    }

    #[test]
    fn a_bad_value_names_table_column_and_type() {
        let err = convert(ColumnType::Int32, "int", MyValue::Double(1.5)).unwrap_err().to_string();
        assert!(err.contains("shop.orders") && err.contains("int"), "{err}");
        assert!(convert(ColumnType::Text, "set('a')", MyValue::Int(1)).is_err());
    }

    #[test]
    fn a_short_row_is_a_protocol_error() {
        let table = TableSchema { id: TableId::new("a", "b"), columns: vec![], primary_key: vec![] };
        let mut schema = table.clone();
        schema.columns.push(Column {
            name: "x".into(),
            data_type: ColumnType::Int32,
            nullable: true,
            source_type: "int".into(),
            source_id: None,
        });
        assert!(RowConverter::new(Arc::new(schema)).convert(vec![]).is_err());
    }
}
