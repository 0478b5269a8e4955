//! Reading a mirror back for `tributary validate`: its column schema, and its
//! current rows file by file as core values (one record batch of
//! [`VALIDATE_BATCH_ROWS`] rows in memory at a time).

use crate::encode::decode_cell;
use crate::files::resolve;
use crate::schema::delta_type;
use crate::table::open_existing;
use crate::DeltaError;
use deltalake::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use std::path::Path;
use tributary_core::{ColumnType, Value};

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

/// The columns of the table's current version, in schema order (metadata columns included).
pub async fn mirror_columns(table_path: &Path) -> Result<Vec<MirrorColumn>, DeltaError> {
    let table = open_existing(table_path).await?;
    let state = table.snapshot().map_err(|e| DeltaError::delta(table_path, "load", e))?;
    let schema = state.schema();
    Ok(schema
        .fields()
        .map(|f| MirrorColumn {
            name: f.name().to_string(),
            delta_type: format!("{}", f.data_type()),
            nullable: f.is_nullable(),
        })
        .collect())
}

/// Calls `row` with the column names and values of every row of the table's
/// current version, streaming one record batch at a time. Returns the row count.
pub async fn for_each_row(table_path: &Path, mut row: impl FnMut(&[String], Vec<Value>)) -> Result<u64, DeltaError> {
    let table = open_existing(table_path).await?;
    let state = table.snapshot().map_err(|e| DeltaError::delta(table_path, "load", e))?;
    let paths: Vec<String> = state.log_data().iter().map(|f| f.path().to_string()).collect();
    let mut count = 0u64;
    for path in paths {
        let corrupt = |problem: String| DeltaError::Corrupt { table: table_path.to_path_buf(), problem };
        let file = std::fs::File::open(resolve(table_path, &path)).map_err(|e| corrupt(format!("{path}: {e}")))?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .and_then(|b| b.with_batch_size(VALIDATE_BATCH_ROWS).build())
            .map_err(|e| corrupt(format!("{path}: {e}")))?;
        for batch in reader {
            let batch = batch.map_err(|e| corrupt(format!("{path}: {e}")))?;
            let schema = batch.schema();
            let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
            for r in 0..batch.num_rows() {
                let mut values = Vec::with_capacity(names.len());
                for (c, name) in names.iter().enumerate() {
                    let value = decode_cell(batch.column(c).as_ref(), r).map_err(|problem| DeltaError::Corrupt {
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
