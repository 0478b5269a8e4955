//! Reading a mirror back for `tributary validate`: its column schema (with
//! what Tributary's table properties say of the columns: which ones the
//! source fills, which ones it dropped and the mirror keeps), and its
//! current rows file by file as core values (one record batch of
//! [`VALIDATE_BATCH_ROWS`] rows in memory at a time), without the rows
//! deletion vectors delete.

use crate::encode::{decode_cell, time_text};
use crate::schema::{delta_type, PROP_SCHEMA, PROP_SOURCE_COLUMNS, PROP_TEXT_COLUMNS};
use crate::table::open_existing;
use crate::DeltaError;
use deltalake::arrow::array::ArrayRef;
use deltalake::arrow::datatypes::{DataType as ArrowType, Field};
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use tributary_core::{ColumnType, TableSchema, Value};

/// Rows per record batch read by [`for_each_row`].
pub const VALIDATE_BATCH_ROWS: usize = 8 * 1024;

/// One column of a Delta table as its log declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirrorColumn {
    pub name: String,
    /// The Delta type, rendered as [`expected_delta_type`] renders a mapped source type.
    pub delta_type: String,
    pub nullable: bool,
}

/// The Delta type a source column of type `ty` is mirrored as (docs/types.md), rendered for comparison.
pub fn expected_delta_type(ty: &ColumnType) -> String {
    format!("{}", delta_type(ty))
}

/// A source value of a column of type `ty` in the form the mirror reads it
/// back, when the two differ: a time of day is stored as text with the
/// column's fractional digits (docs/types.md), in an array too. `None`: the
/// value reads back as it is.
pub fn stored_form(ty: &ColumnType, value: &Value) -> Option<Value> {
    match (ty, value) {
        (ColumnType::Time { fsp }, Value::Time(micros)) => Some(Value::Text(time_text(*micros, *fsp))),
        (ColumnType::Array { element }, Value::Array(items)) if has_stored_form(element) => {
            Some(Value::Array(items.iter().map(|v| stored_form(element, v).unwrap_or_else(|| v.clone())).collect()))
        }
        _ => None,
    }
}

/// A source value of a column stored as text (`incompatible_type_changes =
/// "string"`) in the form the mirror holds it: its text form.
pub fn text_form(ty: &ColumnType, value: &Value) -> Value {
    crate::encode::text_form(ty, value)
}

/// True when values of type `ty` can have a [`stored_form`] of their own.
pub fn has_stored_form(ty: &ColumnType) -> bool {
    match ty {
        ColumnType::Time { .. } => true,
        ColumnType::Array { element } => has_stored_form(element),
        _ => false,
    }
}

/// A mirror's columns and the schema Tributary stored with it.
#[derive(Debug, Clone, PartialEq)]
pub struct MirrorSchema {
    /// The columns of the table's current version, in schema order (metadata columns included).
    pub columns: Vec<MirrorColumn>,
    /// The table's schema with Tributary's column types (table property
    /// `tributary.schema`): the source's columns at the committed position,
    /// then the columns the source dropped that the mirror keeps. `None` for
    /// a table without the property.
    pub stored: Option<TableSchema>,
    /// How many leading columns of `stored` the source fills (table property
    /// `tributary.sourceColumns`; all of them when absent).
    pub source_columns: usize,
    /// Columns stored as text whatever their source type (table property
    /// `tributary.textColumns`; `incompatible_type_changes = "string"`).
    pub text_columns: BTreeSet<String>,
}

impl MirrorSchema {
    /// The columns the source dropped that the mirror keeps (nullable, NULL
    /// from the drop on), in stored order.
    pub fn kept_columns(&self) -> Vec<&str> {
        match &self.stored {
            Some(s) => s.columns.iter().skip(self.source_columns).map(|c| c.name.as_str()).collect(),
            None => Vec::new(),
        }
    }

    /// The columns the source filled at the table's committed position, in stored order.
    pub fn source_filled_columns(&self) -> Vec<&str> {
        match &self.stored {
            Some(s) => s.columns.iter().take(self.source_columns).map(|c| c.name.as_str()).collect(),
            None => Vec::new(),
        }
    }
}

/// The columns of the table's current version, in schema order (metadata columns included).
pub async fn mirror_columns(table_path: &Path) -> Result<Vec<MirrorColumn>, DeltaError> {
    Ok(mirror_schema(table_path).await?.columns)
}

/// The columns of the table's current version and the schema stored with it
/// (an unreadable `tributary.schema` property reads as none).
pub async fn mirror_schema(table_path: &Path) -> Result<MirrorSchema, DeltaError> {
    let table = open_existing(table_path).await?;
    let state = table.snapshot().map_err(|e| DeltaError::delta(table_path, "load", e))?;
    let columns = state
        .schema()
        .fields()
        .map(|f| MirrorColumn {
            name: f.name().to_string(),
            delta_type: format!("{}", f.data_type()),
            nullable: f.is_nullable(),
        })
        .collect();
    let config = state.metadata().configuration();
    let stored: Option<TableSchema> = config.get(PROP_SCHEMA).and_then(|s| serde_json::from_str(s).ok());
    let all = stored.as_ref().map_or(0, |s| s.columns.len());
    let source_columns =
        config.get(PROP_SOURCE_COLUMNS).and_then(|n| n.parse::<usize>().ok()).map_or(all, |n| n.min(all));
    let text_columns = config.get(PROP_TEXT_COLUMNS).and_then(|t| serde_json::from_str(t).ok()).unwrap_or_default();
    Ok(MirrorSchema { columns, stored, source_columns, text_columns })
}

/// Calls `row` with the column names and values of every row of the table's
/// current version, streaming one record batch at a time. Returns the row count.
pub async fn for_each_row(table_path: &Path, mut row: impl FnMut(&[String], Vec<Value>)) -> Result<u64, DeltaError> {
    let table = open_existing(table_path).await?;
    let state = table.snapshot().map_err(|e| DeltaError::delta(table_path, "load", e))?;
    let paths: Vec<(String, Option<_>)> =
        state.log_data().iter().map(|f| (f.path().to_string(), f.deletion_vector_descriptor())).collect();
    let files = crate::storage::TableFiles::of(table_path)?;
    let mut count = 0u64;
    for (path, vector) in paths {
        // Rows the file's deletion vector deletes are not in the table.
        let deleted = match vector {
            Some(dv) => Some(crate::deletion_vector::read(&table, &dv).await?),
            None => None,
        };
        let mut offset = 0u64;
        let corrupt = |problem: String| DeltaError::Corrupt { table: table_path.to_path_buf(), problem };
        let reader = crate::files::open_reader(&files, &path, VALIDATE_BATCH_ROWS).map_err(|e| match e {
            crate::files::FileError::Parquet { source, .. } => corrupt(format!("{path}: {source}")),
            other => other.into_delta(table_path),
        })?;
        for batch in reader {
            let batch = batch.map_err(|e| corrupt(format!("{path}: {e}")))?;
            let schema = batch.schema();
            let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
            // Other writers (delta-rs from Python) may store view types.
            let columns: Vec<ArrayRef> = batch
                .columns()
                .iter()
                .map(|c| match without_views(c.data_type()) {
                    Some(plain) => deltalake::arrow::compute::cast(c, &plain),
                    None => Ok(c.clone()),
                })
                .collect::<Result<_, _>>()
                .map_err(|e| corrupt(format!("{path}: {e}")))?;
            let first = offset;
            offset += batch.num_rows() as u64;
            for r in 0..batch.num_rows() {
                if deleted.as_ref().is_some_and(|d| d.contains(first + r as u64)) {
                    continue;
                }
                let mut values = Vec::with_capacity(names.len());
                for (c, name) in names.iter().enumerate() {
                    let value = decode_cell(columns[c].as_ref(), r).map_err(|problem| DeltaError::Corrupt {
                        table: table_path.to_path_buf(),
                        problem: format!("{path}: column {name}: {problem}"),
                    })?;
                    values.push(value);
                }
                row(&names, values);
                count += 1;
            }
        }
    }
    Ok(count)
}

/// `ty` with its binary and list view types (which Tributary never writes,
/// but other writers may) replaced by their plain forms; `None` when it has none.
fn without_views(ty: &ArrowType) -> Option<ArrowType> {
    let item = |field: &Arc<Field>| {
        without_views(field.data_type()).map(|t| Arc::new(field.as_ref().clone().with_data_type(t)))
    };
    match ty {
        ArrowType::BinaryView => Some(ArrowType::Binary),
        ArrowType::Utf8View => Some(ArrowType::Utf8),
        ArrowType::List(f) => item(f).map(ArrowType::List),
        ArrowType::LargeList(f) => item(f).map(ArrowType::LargeList),
        ArrowType::ListView(f) => Some(ArrowType::List(item(f).unwrap_or_else(|| f.clone()))),
        ArrowType::LargeListView(f) => Some(ArrowType::LargeList(item(f).unwrap_or_else(|| f.clone()))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_time_reads_back_as_text_with_its_digits_and_views_as_plain_types() {
        let time3 = ColumnType::Time { fsp: 3 };
        let t = Value::Time(((12 * 60 + 34) * 60 + 56) * 1_000_000 + 780_000);
        assert_eq!(stored_form(&time3, &t), Some(Value::Text("12:34:56.780".into())));
        let times = ColumnType::Array { element: Box::new(time3) };
        assert!(has_stored_form(&times));
        assert_eq!(
            stored_form(&times, &Value::Array(vec![t, Value::Null])),
            Some(Value::Array(vec![Value::Text("12:34:56.780".into()), Value::Null]))
        );
        assert_eq!(stored_form(&ColumnType::Int64, &Value::Int(1)), None);
        assert!(!has_stored_form(&ColumnType::Array { element: Box::new(ColumnType::Text) }));

        assert_eq!(without_views(&ArrowType::BinaryView), Some(ArrowType::Binary));
        let list = ArrowType::List(Arc::new(Field::new("element", ArrowType::BinaryView, true)));
        let plain = ArrowType::List(Arc::new(Field::new("element", ArrowType::Binary, true)));
        assert_eq!(without_views(&list), Some(plain.clone()));
        assert_eq!(without_views(&plain), None);
        assert_eq!(without_views(&ArrowType::Int64), None);
    }
}
