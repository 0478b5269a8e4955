//! Table identity and schema: columns with faithful types and the primary key.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A source table: database (MySQL) or schema (PostgreSQL) plus table name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TableId {
    pub schema: String,
    pub name: String,
}

impl TableId {
    pub fn new(schema: impl Into<String>, name: impl Into<String>) -> Self {
        TableId { schema: schema.into(), name: name.into() }
    }
}

impl fmt::Display for TableId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.schema, self.name)
    }
}

/// The type of a column as Tributary stores it; docs/types.md maps each
/// source type to one of these and each of these to a Delta / Spark type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ColumnType {
    Bool,
    /// Delta `byte`.
    Int8,
    /// Delta `short`.
    Int16,
    /// Delta `integer`.
    Int32,
    /// Delta `long`.
    Int64,
    /// Unsigned 64-bit, stored as Delta `decimal(20,0)` so nothing overflows.
    UInt64,
    Float32,
    Float64,
    Decimal {
        precision: u8,
        scale: u8,
    },
    Date,
    /// Time of day / duration; stored as text `[-]HH:MM:SS[.ffffff]` with `fsp` digits.
    Time {
        fsp: u8,
    },
    /// Instant, UTC (Delta `timestamp`).
    Timestamp,
    /// Wall clock without zone (Delta `timestamp_ntz`).
    TimestampNtz,
    Text,
    Bytes,
    Json,
    Array {
        element: Box<ColumnType>,
    },
}

/// One column of a table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    pub data_type: ColumnType,
    pub nullable: bool,
    /// The type as the source spells it (e.g. `bigint(20) unsigned`), for messages and docs.
    pub source_type: String,
    /// The source's own number for the column, which a rename keeps and a
    /// drop plus an add does not (PostgreSQL `attnum`); `None` where the
    /// source has none (MySQL). Stored with the table's schema, so a rename
    /// made while the pipeline was stopped is still recognised.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_id: Option<i64>,
}

/// A table's columns, in source order, and its primary key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableSchema {
    pub id: TableId,
    pub columns: Vec<Column>,
    /// Indexes into `columns` of the primary-key columns, in key order; empty
    /// for a table without primary key (mirrored as an append-only changelog).
    pub primary_key: Vec<usize>,
}

impl TableSchema {
    /// True when the table has a primary key.
    pub fn has_primary_key(&self) -> bool {
        !self.primary_key.is_empty()
    }

    /// Index of the column called `name`.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }
}
