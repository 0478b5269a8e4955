//! Some rows of some columns of a parquet file answered from its row groups'
//! statistics, without reading a page, when each column holds one value in
//! every row group concerned (exact min = max and no NULL, or only NULLs).
//!
//! The planner reads the metadata columns (`_tributary_op` …) of the stored
//! rows a deletion-vector batch touches ([`crate::apply`]). On a random-key
//! batch those rows lie in nearly every page of the table, so a page read
//! costs in proportion to the table; but the metadata of a snapshot copy, or
//! of one large source transaction, is the same for every row of a row group,
//! and the footer says so. Anything else (a column that varies, statistics
//! missing or inexact, a nested or unexpected type) answers `None` and the
//! caller reads the pages.

use deltalake::arrow::array::{new_null_array, ArrayRef, Int64Array, RecordBatch, StringArray};
use deltalake::arrow::datatypes::{DataType, Schema, SchemaRef, TimeUnit};
use deltalake::parquet::file::metadata::ParquetMetaData;
use deltalake::parquet::file::statistics::Statistics;
use std::sync::Arc;

/// One column's single value in a row group.
enum Constant {
    Null,
    Text(String),
    Int(i64),
}

/// The sorted `rows` of the top-level `columns` (those the file has, in file
/// order, as a projected read returns them), one batch per row group that
/// holds some of them; `None` unless every such column is constant in every
/// such row group.
pub(crate) fn rows_from_statistics(
    metadata: &ParquetMetaData,
    schema: &SchemaRef,
    columns: &[String],
    rows: &[usize],
) -> Option<Vec<RecordBatch>> {
    let parquet_schema = metadata.file_metadata().schema_descr();
    // (arrow field, parquet leaf index) of each wanted column, in file order.
    let mut wanted = Vec::new();
    for field in schema.fields().iter().filter(|f| columns.iter().any(|c| c == f.name())) {
        let leaf = parquet_schema.columns().iter().position(|c| c.path().parts() == [field.name().as_str()])?;
        wanted.push((field.clone(), leaf));
    }
    if wanted.is_empty() {
        return None;
    }
    let projected: SchemaRef = Arc::new(Schema::new(wanted.iter().map(|(f, _)| f.clone()).collect::<Vec<_>>()));
    let mut batches = Vec::new();
    let (mut first_row, mut next) = (0usize, 0usize);
    for group in metadata.row_groups() {
        let group_rows = usize::try_from(group.num_rows()).ok()?;
        let end = first_row + group_rows;
        let count = rows[next..].partition_point(|&r| r < end);
        next += count;
        first_row = end;
        if count == 0 {
            continue;
        }
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(wanted.len());
        for (field, leaf) in &wanted {
            let constant = constant(group.column(*leaf).statistics()?, group_rows)?;
            arrays.push(repeated(&constant, field.data_type(), count)?);
        }
        batches.push(RecordBatch::try_new(projected.clone(), arrays).ok()?);
    }
    (next == rows.len()).then_some(batches)
}

/// The one value a column chunk holds, from its statistics.
fn constant(statistics: &Statistics, rows: usize) -> Option<Constant> {
    let nulls = statistics.null_count_opt()?;
    if nulls == rows as u64 {
        return Some(Constant::Null);
    }
    if nulls != 0 || !statistics.min_is_exact() || !statistics.max_is_exact() {
        return None;
    }
    match statistics {
        Statistics::Int64(s) if s.min_opt()? == s.max_opt()? => Some(Constant::Int(*s.min_opt()?)),
        Statistics::ByteArray(s) if s.min_opt()? == s.max_opt()? => {
            Some(Constant::Text(std::str::from_utf8(s.min_opt()?.data()).ok()?.to_string()))
        }
        _ => None,
    }
}

/// `count` copies of `constant` as an array of `data_type`.
fn repeated(constant: &Constant, data_type: &DataType, count: usize) -> Option<ArrayRef> {
    use deltalake::arrow::array::TimestampMicrosecondArray;
    Some(match (constant, data_type) {
        (Constant::Null, _) => new_null_array(data_type, count),
        (Constant::Text(s), DataType::Utf8) => Arc::new(StringArray::from_iter_values(std::iter::repeat_n(s, count))),
        (Constant::Int(v), DataType::Int64) => Arc::new(Int64Array::from(vec![*v; count])),
        (Constant::Int(v), DataType::Timestamp(TimeUnit::Microsecond, zone)) => {
            Arc::new(TimestampMicrosecondArray::from(vec![*v; count]).with_timezone_opt(zone.clone()))
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::read_part;
    use crate::storage::TableFiles;
    use deltalake::arrow::array::{Array, AsArray};
    use deltalake::arrow::datatypes::{Field, Int64Type};
    use deltalake::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use deltalake::parquet::arrow::ArrowWriter;
    use deltalake::parquet::file::properties::WriterProperties;

    /// A file of 3 row groups of 100 rows: `same` is "a" in the first two and
    /// "b" in the third, `varies` differs per row, `empty` is NULL.
    fn write(dir: &std::path::Path) -> SchemaRef {
        let schema: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("same", DataType::Utf8, false),
            Field::new("varies", DataType::Int64, false),
            Field::new("empty", DataType::Int64, true),
        ]));
        let props = WriterProperties::builder().set_max_row_group_row_count(Some(100)).build();
        let file = std::fs::File::create(dir.join("f.parquet")).unwrap();
        let mut writer = ArrowWriter::try_new(file, schema.clone(), Some(props)).unwrap();
        let same: Vec<&str> = (0..300).map(|i| if i < 200 { "a" } else { "b" }).collect();
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(same)),
                Arc::new(Int64Array::from_iter_values(0..300)),
                new_null_array(&DataType::Int64, 300),
            ],
        )
        .unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        schema
    }

    #[test]
    fn constant_columns_come_from_the_footer_and_match_a_page_read_a_varying_one_does_not() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path());
        let builder =
            ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(dir.path().join("f.parquet")).unwrap())
                .unwrap();
        let (metadata, schema) = (builder.metadata().clone(), builder.schema().clone());
        let rows = [3, 150, 199, 200, 299];
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let batches = rows_from_statistics(&metadata, &schema, &names(&["empty", "same"]), &rows).unwrap();
        assert_eq!(batches.len(), 3, "one batch per row group holding a wanted row");
        let same: Vec<String> = batches
            .iter()
            .flat_map(|b| b.column(0).as_string::<i32>().iter().map(|v| v.unwrap().to_string()).collect::<Vec<_>>())
            .collect();
        assert_eq!(same, ["a", "a", "a", "b", "b"]);
        assert!(batches.iter().all(|b| b.column(1).null_count() == b.num_rows()));
        // The same answer as reading the pages.
        let pages =
            ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(dir.path().join("f.parquet")).unwrap())
                .unwrap();
        let read: Vec<RecordBatch> = crate::files::narrow(pages, Some(&names(&["same", "empty"])), Some(&rows))
            .build()
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(read.iter().all(|b| b.column(1).null_count() == b.num_rows()));
        let read_same: Vec<String> = read
            .iter()
            .flat_map(|b| b.column(0).as_string::<i32>().iter().map(|v| v.unwrap().to_string()).collect::<Vec<_>>())
            .collect();
        assert_eq!(read_same, same);
        // A column that varies within a row group must be read.
        assert!(rows_from_statistics(&metadata, &schema, &names(&["same", "varies"]), &rows).is_none());
        let files = TableFiles::Local(dir.path().to_path_buf());
        let varies = read_part(&files, "f.parquet", 0, Some(&names(&["varies"])), Some(&rows)).unwrap();
        let values: Vec<i64> =
            varies.iter().flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec()).collect();
        assert_eq!(values, [3, 150, 199, 200, 299]);
    }
}
