//! Schema compatibility of a mirror with its source table: every source column
//! present with the Delta type docs/types.md maps it to, and no other column
//! besides Tributary's metadata columns.

use serde::Serialize;
use tributary_core::TableSchema;
use tributary_delta::{expected_delta_type, MirrorColumn};

/// Prefix of the metadata columns the pipeline adds.
const METADATA_PREFIX: &str = "_tributary_";

#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct SchemaReport {
    /// Source columns the mirror lacks.
    pub missing_columns: Vec<String>,
    /// Mirror columns (besides metadata) the source lacks.
    pub extra_columns: Vec<String>,
    pub type_changes: Vec<TypeChange>,
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
}

/// Compares the source schema with the mirror's columns.
pub fn check(source: &TableSchema, mirror: &[MirrorColumn]) -> SchemaReport {
    let mut report = SchemaReport::default();
    for column in &source.columns {
        match mirror.iter().find(|m| m.name == column.name) {
            None => report.missing_columns.push(column.name.clone()),
            Some(m) => {
                let expected = expected_delta_type(&column.data_type);
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
    for m in mirror {
        if !m.name.starts_with(METADATA_PREFIX) && !source.columns.iter().any(|c| c.name == m.name) {
            report.extra_columns.push(m.name.clone());
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use tributary_core::{Column, ColumnType, TableId};

    fn col(name: &str, data_type: ColumnType) -> Column {
        Column { name: name.into(), data_type, nullable: true, source_type: "x".into() }
    }

    fn mirror(name: &str, ty: &ColumnType) -> MirrorColumn {
        MirrorColumn { name: name.into(), delta_type: expected_delta_type(ty), nullable: true }
    }

    #[test]
    fn finds_missing_extra_and_changed_columns() {
        let source = TableSchema {
            id: TableId::new("d", "t"),
            columns: vec![col("id", ColumnType::Int64), col("a", ColumnType::Text), col("b", ColumnType::Int32)],
            primary_key: vec![0],
        };
        let same = vec![
            mirror("id", &ColumnType::Int64),
            mirror("a", &ColumnType::Text),
            mirror("b", &ColumnType::Int32),
            mirror("_tributary_op", &ColumnType::Text),
        ];
        assert!(check(&source, &same).ok());
        let changed =
            vec![mirror("id", &ColumnType::Int64), mirror("b", &ColumnType::Int64), mirror("c", &ColumnType::Text)];
        let report = check(&source, &changed);
        assert_eq!(report.missing_columns, vec!["a"]);
        assert_eq!(report.extra_columns, vec!["c"]);
        assert_eq!(report.type_changes.len(), 1);
        assert_eq!(report.type_changes[0].column, "b");
    }
}
