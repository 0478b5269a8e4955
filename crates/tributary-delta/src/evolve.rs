//! Which source schema changes a mirrored table follows, and how: the plan
//! from the table's current schema to the one a source reports.
//!
//! The table's schema (the *sink* schema) is the source's columns in source
//! order, followed by columns the source dropped, which are kept (nullable,
//! NULL from their drop on) so history stays readable without column mapping.
//! Rules (docs/schema-evolution.md):
//! - a new column is added, nullable (older rows read NULL);
//! - a dropped column is kept as a trailing nullable column;
//! - a type whose Delta type is unchanged (VARCHAR(50) → TEXT, and every
//!   integer change: all integers are stored as `long`) only updates the
//!   mapping; a safe widening to another Delta type (FLOAT → DOUBLE, DECIMAL
//!   with no fewer integer or fraction digits, an integer to a wide enough
//!   DECIMAL) rewrites the data files with the new type (Spark 3.5 cannot read
//!   a FLOAT file as DOUBLE);
//! - NOT NULL → NULL relaxes the column; NULL → NOT NULL keeps it nullable;
//! - anything else (VARCHAR → INT, a changed primary key) is refused for
//!   that table with [`SchemaChangeError`]; with `to_text` (the sink's
//!   `incompatible_type_changes = "string"`) a non-key column is stored as
//!   text instead (data files rewritten when its Delta type was not `string`).

use crate::schema::{delta_type, MAX_DECIMAL_PRECISION};
use deltalake::kernel::DataType;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;
use tributary_core::{Column, ColumnType, TableSchema};

/// One column-level change, for logs, metrics and `tributary status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum ColumnChange {
    /// A new source column; older rows read NULL.
    Added { column: String, source_type: String },
    /// The source dropped the column; kept in Delta, NULL from now on.
    Dropped { column: String },
    /// The type widened; the data files were rewritten with the new type.
    Widened { column: String, from: String, to: String },
    /// The source type changed, the Delta type did not (e.g. VARCHAR(50) → VARCHAR(200)).
    Retyped { column: String, from: String, to: String },
    /// NOT NULL was dropped.
    Relaxed { column: String },
    /// A column dropped earlier came back.
    Restored { column: String },
    /// Renamed (the source said so): `to` is added, older rows get the values
    /// of `from`, which is kept like a dropped column (NULL from now on).
    /// Every step is additive, so Delta 3.x reads the change feed across it.
    Renamed { from: String, to: String },
    /// An incompatible type change followed by storing the column as text
    /// (`incompatible_type_changes = "string"`).
    AsText { column: String, from: String, to: String },
}

impl ColumnChange {
    /// The column the change is about.
    pub fn column(&self) -> &str {
        match self {
            ColumnChange::Added { column, .. }
            | ColumnChange::Dropped { column }
            | ColumnChange::Widened { column, .. }
            | ColumnChange::Retyped { column, .. }
            | ColumnChange::Relaxed { column }
            | ColumnChange::Restored { column }
            | ColumnChange::Renamed { to: column, .. }
            | ColumnChange::AsText { column, .. } => column,
        }
    }

    /// The metric label of the change.
    pub fn kind(&self) -> &'static str {
        match self {
            ColumnChange::Added { .. } => "add_column",
            ColumnChange::Dropped { .. } => "drop_column",
            ColumnChange::Widened { .. } => "widen_type",
            ColumnChange::Retyped { .. } => "change_type",
            ColumnChange::Relaxed { .. } => "drop_not_null",
            ColumnChange::Restored { .. } => "add_column",
            ColumnChange::Renamed { .. } => "rename_column",
            ColumnChange::AsText { .. } => "map_to_string",
        }
    }
}

impl fmt::Display for ColumnChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ColumnChange::Added { column, source_type } => write!(f, "add column {column} {source_type}"),
            ColumnChange::Dropped { column } => write!(f, "drop column {column} (kept, NULL from now on)"),
            ColumnChange::Widened { column, from, to } => write!(f, "widen {column} {from} -> {to}"),
            ColumnChange::Retyped { column, from, to } => write!(f, "change {column} {from} -> {to}"),
            ColumnChange::Relaxed { column } => write!(f, "drop NOT NULL on {column}"),
            ColumnChange::Restored { column } => write!(f, "add column {column} again"),
            ColumnChange::Renamed { from, to } => {
                write!(f, "rename column {from} to {to} ({from} kept, NULL from now on)")
            }
            ColumnChange::AsText { column, from, to } => write!(f, "store {column} as text ({from} -> {to})"),
        }
    }
}

/// A change Delta cannot follow; the table stops, the others keep flowing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaChangeError {
    #[error("column {column} changed type from {from} to {to}, which the Delta table cannot follow without losing data; options: re-snapshot the table (stop the pipeline, move its Delta table directory aside, start: it is copied again with the new type), map the column to string (set sink.delta.incompatible_type_changes = \"string\" and restart: it is stored as text from then on), or exclude the table with source.exclude")]
    Incompatible { column: String, from: String, to: String },
    #[error("primary key column {column} changed type from {from} to {to}, which the Delta table cannot follow; options: re-snapshot the table (stop the pipeline, move its Delta table directory aside, start: it is copied again with the new type), or exclude the table with source.exclude")]
    KeyIncompatible { column: String, from: String, to: String },
    #[error("the primary key changed from ({from}) to ({to}); options: re-snapshot the table (stop the pipeline, move its Delta table directory aside, start), or exclude the table with source.exclude")]
    KeyChanged { from: String, to: String },
}

/// The new sink schema and what changed.
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaPlan {
    /// The table's new schema: source columns, then kept dropped columns.
    pub sink: TableSchema,
    /// How many leading columns of `sink` the source fills.
    pub source_columns: usize,
    pub changes: Vec<ColumnChange>,
    /// True when data files must be rewritten (a type widened, or a column
    /// started to be stored as text).
    pub rewrite: bool,
    /// The columns stored as text whatever their source type.
    pub text_columns: BTreeSet<String>,
}

/// The table a plan starts from: its schema, how many leading columns the
/// source fills, and the columns stored as text.
#[derive(Debug, Clone, Copy)]
pub struct SinkState<'a> {
    pub schema: &'a TableSchema,
    pub source_columns: usize,
    pub text_columns: &'a BTreeSet<String>,
}

/// Plans the move from the `sink` table to the source schema `source`;
/// `None` when nothing changes. `renamed` lists `(from, to)` column renames
/// the source reported; one is taken when `from` is gone, `to` is new and
/// both have the same type. `to_text`: an incompatible type change of a
/// non-key column stores the column as text instead of failing.
pub fn plan(
    sink: SinkState<'_>,
    source: &TableSchema,
    renamed: &[(String, String)],
    to_text: bool,
) -> Result<Option<SchemaPlan>, SchemaChangeError> {
    let SinkState { schema: sink, source_columns, text_columns } = sink;
    let mut text = text_columns.clone();
    let key_names = |s: &TableSchema| s.primary_key.iter().map(|&i| s.columns[i].name.clone()).collect::<Vec<_>>();
    let (old_key, new_key) = (key_names(sink), key_names(source));
    if old_key != new_key {
        return Err(SchemaChangeError::KeyChanged { from: old_key.join(", "), to: new_key.join(", ") });
    }
    let mut changes = Vec::new();
    let mut rewrite = false;
    let mut columns: Vec<Column> = Vec::with_capacity(source.columns.len());
    for new in &source.columns {
        let Some(index) = sink.column_index(&new.name) else {
            text.remove(&new.name);
            changes.push(ColumnChange::Added { column: new.name.clone(), source_type: new.source_type.clone() });
            columns.push(Column { nullable: true, ..new.clone() });
            continue;
        };
        let old = &sink.columns[index];
        if index >= source_columns {
            changes.push(ColumnChange::Restored { column: new.name.clone() });
        }
        let mut column = new.clone();
        // Delta cannot make an existing column NOT NULL; it can relax one.
        column.nullable = old.nullable || new.nullable;
        if !old.nullable && new.nullable {
            changes.push(ColumnChange::Relaxed { column: new.name.clone() });
        }
        if old.data_type != new.data_type {
            let (from, to) = (old.source_type.clone(), new.source_type.clone());
            let stored_as_text = text_columns.contains(&new.name);
            let stored = if stored_as_text { DataType::STRING } else { delta_type(&old.data_type) };
            if stored == delta_type(&new.data_type) {
                // The Delta type stays; a column stored as text whose source
                // type became a text type again is simply text now.
                text.remove(&new.name);
                changes.push(ColumnChange::Retyped { column: new.name.clone(), from, to });
            } else if stored_as_text {
                changes.push(ColumnChange::Retyped { column: new.name.clone(), from, to });
            } else if widens(&old.data_type, &new.data_type) {
                rewrite = true;
                changes.push(ColumnChange::Widened { column: new.name.clone(), from, to });
            } else {
                // Same source spelling (e.g. a redefined domain): name the mapped types too.
                let (from, to) = if from == to {
                    (format!("{from} ({:?})", old.data_type), format!("{to} ({:?})", new.data_type))
                } else {
                    (from, to)
                };
                let column = new.name.clone();
                if new_key.contains(&column) {
                    return Err(SchemaChangeError::KeyIncompatible { column, from, to });
                }
                if !to_text {
                    return Err(SchemaChangeError::Incompatible { column, from, to });
                }
                // Stored as text from now on: older values become their text
                // forms (a rewrite) unless the column already is `string`.
                rewrite |= stored != DataType::STRING;
                if delta_type(&new.data_type) != DataType::STRING {
                    text.insert(column.clone());
                }
                changes.push(ColumnChange::AsText { column, from, to });
            }
        } else if old.source_type != new.source_type {
            changes.push(ColumnChange::Retyped {
                column: new.name.clone(),
                from: old.source_type.clone(),
                to: new.source_type.clone(),
            });
        }
        columns.push(column);
    }
    let mut kept = Vec::new();
    for (index, old) in sink.columns.iter().enumerate() {
        if source.column_index(&old.name).is_none() {
            if index < source_columns {
                changes.push(ColumnChange::Dropped { column: old.name.clone() });
            }
            kept.push(Column { nullable: true, ..old.clone() });
        }
    }
    for (from, to) in renamed {
        let added = changes.iter().position(|c| matches!(c, ColumnChange::Added { column, .. } if column == to));
        let dropped = changes.iter().position(|c| matches!(c, ColumnChange::Dropped { column } if column == from));
        let same_type = match (sink.column_index(from), source.column_index(to)) {
            (Some(a), Some(b)) => sink.columns[a].data_type == source.columns[b].data_type,
            _ => false,
        };
        if let (Some(added), Some(dropped), true) = (added, dropped, same_type) {
            if text_columns.contains(from) {
                text.insert(to.clone());
            }
            changes[added] = ColumnChange::Renamed { from: from.to_string(), to: to.to_string() };
            changes.remove(dropped);
        }
    }
    let order_changed = columns.iter().zip(&sink.columns).any(|(a, b)| a.name != b.name);
    if changes.is_empty() && !order_changed {
        return Ok(None);
    }
    let source_count = columns.len();
    columns.extend(kept);
    let primary_key =
        new_key.iter().map(|k| columns.iter().position(|c| &c.name == k).expect("key columns exist")).collect();
    Ok(Some(SchemaPlan {
        sink: TableSchema { id: sink.id.clone(), columns, primary_key },
        source_columns: source_count,
        changes,
        rewrite,
        text_columns: text,
    }))
}

/// True when every value of `from` is exactly representable in `to`, whose
/// Delta type differs (so the files need rewriting). Integer to integer is not
/// here: every integer is stored as Delta `long` ([`delta_type`]).
fn widens(from: &ColumnType, to: &ColumnType) -> bool {
    use ColumnType::*;
    match (from, to) {
        (Int8 | Int16 | Int32 | Int64, Decimal { precision, scale }) => {
            let digits = match from {
                Int8 => 3,
                Int16 => 5,
                Int32 => 10,
                _ => 19,
            };
            precision.saturating_sub(*scale) >= digits && *precision <= MAX_DECIMAL_PRECISION
        }
        (Float32, Float64) => true,
        (Decimal { precision: p1, scale: s1 }, Decimal { precision: p2, scale: s2 }) => {
            s2 >= s1 && p2.saturating_sub(*s2) >= p1.saturating_sub(*s1) && *p2 <= MAX_DECIMAL_PRECISION
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tributary_core::TableId;

    fn col(name: &str, data_type: ColumnType, nullable: bool, source_type: &str) -> Column {
        Column { name: name.into(), data_type, nullable, source_type: source_type.into(), source_id: None }
    }

    fn table(columns: Vec<Column>) -> TableSchema {
        TableSchema { id: TableId::new("db", "t"), columns, primary_key: vec![0] }
    }

    /// [`plan`] under the default policy (incompatible changes stop the table).
    fn plan_stop(
        sink: &TableSchema,
        source_columns: usize,
        source: &TableSchema,
        renamed: &[(String, String)],
    ) -> Result<Option<SchemaPlan>, SchemaChangeError> {
        let none = BTreeSet::new();
        plan(SinkState { schema: sink, source_columns, text_columns: &none }, source, renamed, false)
    }

    fn base() -> TableSchema {
        table(vec![
            col("id", ColumnType::Int32, false, "int"),
            col("name", ColumnType::Text, true, "varchar(50)"),
            col("qty", ColumnType::Int32, true, "int"),
        ])
    }

    #[test]
    fn the_same_schema_is_no_change() {
        assert_eq!(plan_stop(&base(), 3, &base(), &[]).unwrap(), None);
    }

    #[test]
    fn an_added_column_is_nullable_and_a_dropped_one_is_kept_at_the_end() {
        let mut source = base();
        source.columns.remove(1);
        source.columns.push(col("price", ColumnType::Decimal { precision: 10, scale: 2 }, false, "decimal(10,2)"));
        let p = plan_stop(&base(), 3, &source, &[]).unwrap().unwrap();
        let names: Vec<&str> = p.sink.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["id", "qty", "price", "name"]);
        assert_eq!(p.source_columns, 3);
        assert!(p.sink.columns[2].nullable && p.sink.columns[3].nullable);
        assert!(!p.rewrite);
        assert_eq!(
            p.changes,
            [
                ColumnChange::Added { column: "price".into(), source_type: "decimal(10,2)".into() },
                ColumnChange::Dropped { column: "name".into() },
            ]
        );
        // The kept column is not dropped twice, and comes back when re-added.
        assert_eq!(plan_stop(&p.sink, 3, &source, &[]).unwrap(), None);
        let mut again = source.clone();
        again.columns.push(col("name", ColumnType::Text, true, "text"));
        let q = plan_stop(&p.sink, 3, &again, &[]).unwrap().unwrap();
        assert_eq!(q.source_columns, 4);
        assert!(q.changes.contains(&ColumnChange::Restored { column: "name".into() }));
    }

    #[test]
    fn a_rename_the_source_reports_carries_the_column_over() {
        let mut source = base();
        source.columns[2] = col("amount", ColumnType::Int32, true, "int");
        let renamed = [("qty".to_string(), "amount".to_string())];
        let p = plan_stop(&base(), 3, &source, &renamed).unwrap().unwrap();
        assert_eq!(p.changes, [ColumnChange::Renamed { from: "qty".into(), to: "amount".into() }]);
        let names: Vec<&str> = p.sink.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["id", "name", "amount", "qty"]);
        // Without the source's word, or with another type, it is a drop plus an add.
        let kinds = |p: SchemaPlan| p.changes.iter().map(|c| c.kind()).collect::<Vec<_>>();
        assert_eq!(kinds(plan_stop(&base(), 3, &source, &[]).unwrap().unwrap()), ["add_column", "drop_column"]);
        source.columns[2] = col("amount", ColumnType::Text, true, "text");
        assert_eq!(kinds(plan_stop(&base(), 3, &source, &renamed).unwrap().unwrap()), ["add_column", "drop_column"]);
    }

    #[test]
    fn widenings_rewrite_and_same_delta_types_do_not() {
        let mut source = base();
        source.columns[2] = col("qty", ColumnType::Int64, true, "bigint");
        source.columns[1] = col("name", ColumnType::Text, true, "varchar(200)");
        let p = plan_stop(&base(), 3, &source, &[]).unwrap().unwrap();
        assert!(!p.rewrite, "INT -> BIGINT keeps Delta long: nothing rewritten");
        assert_eq!(
            p.changes,
            [
                ColumnChange::Retyped { column: "name".into(), from: "varchar(50)".into(), to: "varchar(200)".into() },
                ColumnChange::Retyped { column: "qty".into(), from: "int".into(), to: "bigint".into() },
            ]
        );
        source.columns[2] = col("qty", ColumnType::Decimal { precision: 12, scale: 2 }, true, "decimal(12,2)");
        let p = plan_stop(&base(), 3, &source, &[]).unwrap().unwrap();
        assert!(p.rewrite);
        assert!(p.changes.contains(&ColumnChange::Widened {
            column: "qty".into(),
            from: "int".into(),
            to: "decimal(12,2)".into()
        }));
        assert!(widens(&ColumnType::Float32, &ColumnType::Float64));
        let d = |p, s| ColumnType::Decimal { precision: p, scale: s };
        assert!(widens(&d(10, 2), &d(12, 2)) && widens(&d(10, 2), &d(12, 4)) && !widens(&d(10, 2), &d(10, 4)));
        assert!(widens(&ColumnType::Int32, &d(12, 2)) && !widens(&ColumnType::Int32, &d(10, 2)));
        assert!(!widens(&ColumnType::Int64, &d(20, 2)) && !widens(&ColumnType::Float64, &ColumnType::Float32));
    }

    #[test]
    fn an_incompatible_type_names_the_column_and_both_types() {
        let mut source = base();
        source.columns[1] = col("name", ColumnType::Int32, true, "int");
        let err = plan_stop(&base(), 3, &source, &[]).unwrap_err().to_string();
        assert!(
            err.contains("name")
                && err.contains("varchar(50)")
                && err.contains("int")
                && err.contains("re-snapshot")
                && err.contains("incompatible_type_changes = \"string\""),
            "{err}"
        );
    }

    #[test]
    fn with_to_text_an_incompatible_change_stores_the_column_as_text() {
        let (none, b) = (BTreeSet::new(), base());
        let state = |schema, text| SinkState { schema, source_columns: 3, text_columns: text };
        // VARCHAR -> INT: the Delta column already is string; nothing rewritten.
        let mut source = base();
        source.columns[1] = col("name", ColumnType::Int32, true, "int");
        let p = plan(state(&b, &none), &source, &[], true).unwrap().unwrap();
        assert_eq!(
            p.changes,
            [ColumnChange::AsText { column: "name".into(), from: "varchar(50)".into(), to: "int".into() }]
        );
        assert!(!p.rewrite);
        assert_eq!(p.text_columns, BTreeSet::from(["name".to_string()]));
        // Later changes of a text column keep it text; back to a text type, it is plain text again.
        let mut later = source.clone();
        later.columns[1] = col("name", ColumnType::Date, true, "date");
        let q = plan(state(&source, &p.text_columns), &later, &[], false).unwrap().unwrap();
        assert_eq!(q.changes.iter().map(|c| c.kind()).collect::<Vec<_>>(), ["change_type"]);
        assert_eq!(q.text_columns, p.text_columns);
        later.columns[1] = col("name", ColumnType::Text, true, "text");
        let r = plan(state(&source, &p.text_columns), &later, &[], false).unwrap().unwrap();
        assert!(r.text_columns.is_empty() && !r.rewrite);
        // INT -> DATE: long to string, so the data files are rewritten.
        let mut source = base();
        source.columns[2] = col("qty", ColumnType::Date, true, "date");
        let p = plan(state(&b, &none), &source, &[], true).unwrap().unwrap();
        assert!(p.rewrite && p.text_columns.contains("qty"));
        // INT -> TEXT: the column becomes text by its own type; not listed.
        source.columns[2] = col("qty", ColumnType::Text, true, "text");
        let p = plan(state(&b, &none), &source, &[], true).unwrap().unwrap();
        assert!(p.rewrite && p.text_columns.is_empty());
        // Never a key column.
        let mut source = base();
        source.columns[0] = col("id", ColumnType::Text, false, "varchar(10)");
        let err = plan(state(&b, &none), &source, &[], true).unwrap_err();
        assert!(matches!(err, SchemaChangeError::KeyIncompatible { .. }), "{err}");
        assert!(!err.to_string().contains("map the column to string"), "{err}");
    }

    #[test]
    fn a_changed_key_is_refused_and_not_null_is_relaxed_not_added() {
        let mut source = base();
        source.primary_key = vec![1];
        assert!(matches!(plan_stop(&base(), 3, &source, &[]), Err(SchemaChangeError::KeyChanged { .. })));
        let mut source = base();
        source.columns[1].nullable = false;
        assert_eq!(
            plan_stop(&base(), 3, &source, &[]).unwrap(),
            None,
            "NULL -> NOT NULL keeps the Delta column nullable"
        );
        let mut source = base();
        source.columns[0].nullable = true;
        let p = plan_stop(&base(), 3, &source, &[]).unwrap().unwrap();
        assert_eq!(p.changes, [ColumnChange::Relaxed { column: "id".into() }]);
    }
}
