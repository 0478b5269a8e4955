//! Schema compatibility of a mirror with its source table: every source column
//! present with the Delta type docs/types.md maps it to, and no other column
//! besides Tributary's metadata columns and the columns the source dropped
//! (docs/schema-evolution.md: the mirror keeps them, NULL from the drop on;
//! notes, not failures).

use serde::Serialize;
use tributary_core::{ColumnType, TableSchema};
use tributary_delta::expected_delta_type;
use tributary_delta::mirror::MirrorSchema;

/// Prefix of the metadata columns the pipeline adds.
const METADATA_PREFIX: &str = "_tributary_";

#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct SchemaReport {
    /// Source columns the mirror lacks.
    pub missing_columns: Vec<String>,
    /// Mirror columns (besides metadata and dropped columns) the source lacks.
    pub extra_columns: Vec<String>,
    pub type_changes: Vec<TypeChange>,
    /// Columns the source dropped that the mirror keeps (its table
    /// properties say so): not a difference.
    pub kept_columns: Vec<String>,
    /// Columns the source dropped that the mirror still has as source columns:
    /// the pipeline has not followed the drop yet (a PostgreSQL table follows
    /// it with its next change). The source's columns still match: not a difference.
    pub dropped_not_followed: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TypeChange {
    pub column: String,
    pub source_type: String,
    /// The Delta type the source type maps to.
    pub expected: String,
    /// The Delta type the mirror has.
    pub actual: String,
}

impl SchemaReport {
    pub fn ok(&self) -> bool {
        self.missing_columns.is_empty() && self.extra_columns.is_empty() && self.type_changes.is_empty()
    }

    /// Notes on columns that are no difference (the kept ones).
    pub fn notes(&self) -> Vec<String> {
        let kept = self.kept_columns.iter().map(|c| format!("column {c}: kept column dropped by the source"));
        let pending = self.dropped_not_followed.iter().map(|c| {
            format!("column {c}: dropped by the source; the pipeline has not followed the drop yet (the mirror will keep it)")
        });
        kept.chain(pending).collect()
    }
}

/// Compares the source schema with the mirror's columns.
pub fn check(source: &TableSchema, mirror: &MirrorSchema) -> SchemaReport {
    let mut report = SchemaReport::default();
    for column in &source.columns {
        match mirror.columns.iter().find(|m| m.name == column.name) {
            None => report.missing_columns.push(column.name.clone()),
            Some(m) => {
                let expected = if mirror.text_columns.contains(&column.name) {
                    expected_delta_type(&ColumnType::Text)
                } else {
                    expected_delta_type(&column.data_type)
                };
                if m.delta_type != expected {
                    report.type_changes.push(TypeChange {
                        column: column.name.clone(),
                        source_type: column.source_type.clone(),
                        expected,
                        actual: m.delta_type.clone(),
                    });
                }
            }
        }
    }
    let kept = mirror.kept_columns();
    let source_filled = mirror.source_filled_columns();
    for m in &mirror.columns {
        if m.name.starts_with(METADATA_PREFIX) || source.columns.iter().any(|c| c.name == m.name) {
            continue;
        }
        let list = if kept.contains(&m.name.as_str()) {
            &mut report.kept_columns
        } else if source_filled.contains(&m.name.as_str()) {
            &mut report.dropped_not_followed
        } else {
            &mut report.extra_columns
        };
        list.push(m.name.clone());
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use tributary_core::{Column, ColumnType, TableId};
    use tributary_delta::MirrorColumn;

    fn col(name: &str, data_type: ColumnType) -> Column {
        Column { name: name.into(), data_type, nullable: true, source_type: "x".into(), source_id: None }
    }

    fn mirror(name: &str, ty: &ColumnType) -> MirrorColumn {
        MirrorColumn { name: name.into(), delta_type: expected_delta_type(ty), nullable: true }
    }

    fn table(columns: Vec<Column>) -> TableSchema {
        TableSchema { id: TableId::new("d", "t"), columns, primary_key: vec![0] }
    }

    /// A mirror without stored schema: every column counts as the source's.
    fn unstored(columns: Vec<MirrorColumn>) -> MirrorSchema {
        MirrorSchema { columns, stored: None, source_columns: 0, text_columns: Default::default() }
    }

    #[test]
    fn finds_missing_extra_and_changed_columns() {
        let source = table(vec![col("id", ColumnType::Int64), col("a", ColumnType::Text), col("b", ColumnType::Int32)]);
        let same = unstored(vec![
            mirror("id", &ColumnType::Int64),
            mirror("a", &ColumnType::Text),
            mirror("b", &ColumnType::Int32),
            mirror("_tributary_op", &ColumnType::Text),
        ]);
        assert!(check(&source, &same).ok());
        let changed = unstored(vec![
            mirror("id", &ColumnType::Int64),
            mirror("b", &ColumnType::Decimal { precision: 12, scale: 2 }),
            mirror("c", &ColumnType::Text),
        ]);
        let report = check(&source, &changed);
        assert_eq!(report.missing_columns, vec!["a"]);
        assert_eq!(report.extra_columns, vec!["c"]);
        assert_eq!(report.type_changes.len(), 1);
        assert_eq!(report.type_changes[0].column, "b");
        assert!(report.notes().is_empty());
        // A column the mirror stores as text is expected as `string`.
        let mut text = unstored(vec![mirror("id", &ColumnType::Int64), mirror("a", &ColumnType::Text)]);
        text.columns.push(mirror("b", &ColumnType::Text));
        assert_eq!(check(&source, &text).type_changes.len(), 1);
        text.text_columns.insert("b".into());
        assert!(check(&source, &text).ok());
    }

    #[test]
    fn a_kept_dropped_column_is_a_note_and_an_unknown_one_a_difference() {
        // The source dropped `a` (kept as the trailing column) and, not yet
        // followed, `b`; `x` was added to the mirror behind the pipeline's back.
        let source = table(vec![col("id", ColumnType::Int64), col("c", ColumnType::Int32)]);
        let stored = table(vec![
            col("id", ColumnType::Int64),
            col("b", ColumnType::Text),
            col("c", ColumnType::Int32),
            col("a", ColumnType::Text),
        ]);
        let mirror_schema = MirrorSchema {
            columns: vec![
                mirror("id", &ColumnType::Int64),
                mirror("b", &ColumnType::Text),
                mirror("c", &ColumnType::Int32),
                mirror("a", &ColumnType::Text),
                mirror("_tributary_op", &ColumnType::Text),
                mirror("x", &ColumnType::Text),
            ],
            stored: Some(stored),
            source_columns: 3,
            text_columns: Default::default(),
        };
        let report = check(&source, &mirror_schema);
        assert_eq!(report.kept_columns, vec!["a"]);
        assert_eq!(report.dropped_not_followed, vec!["b"]);
        assert_eq!(report.extra_columns, vec!["x"]);
        assert!(!report.ok());
        let notes = report.notes();
        assert_eq!(notes[0], "column a: kept column dropped by the source");
        assert!(notes[1].starts_with("column b: dropped by the source"), "{notes:?}");

        let mut clean = mirror_schema.clone();
        clean.columns.retain(|c| c.name != "x");
        assert!(check(&source, &clean).ok(), "kept and not-yet-followed drops are no failure");
    }
}
