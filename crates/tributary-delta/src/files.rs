//! Data and change-data files: names, parquet writing (whole or streamed),
//! reading back, and the in-memory index of a table's active data files with
//! their primary-key bounds. Files of a local table are written in place; those
//! of a remote table are uploaded part by part as they are written, and read
//! by byte range ([`crate::remote_file`]). [`read_part`] reads only some
//! columns and rows of a file (the planner's key lookups).

use crate::deletion_vector::Deleted;
use crate::key::KeyBounds;
use crate::remote_file::{read_remote, StreamedUpload};
use crate::schema::TableLayout;
use crate::stats::{FileStats, StatsBuilder};
use crate::storage::{StoreError, TableFiles};
use deltalake::arrow::array::{BooleanArray, RecordBatch};
use deltalake::arrow::compute::filter_record_batch;
use deltalake::arrow::datatypes::{DataType as ArrowType, SchemaRef};
use deltalake::arrow::error::ArrowError;
use deltalake::kernel::DeletionVectorDescriptor;
use deltalake::parquet::arrow::arrow_reader::{
    ArrowReaderBuilder, ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder, RowSelection,
};
use deltalake::parquet::arrow::{ArrowWriter, ProjectionMask};
use deltalake::parquet::basic::Compression;
use deltalake::parquet::errors::ParquetError;
use deltalake::parquet::file::properties::WriterProperties;
use deltalake::parquet::file::reader::ChunkReader;
use roaring::RoaringTreemap;
use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Folder of change-data files inside a table.
pub const CHANGE_DATA_DIR: &str = "_change_data";

/// Rows per parquet row group.
const ROW_GROUP_ROWS: usize = 128 * 1024;

/// Rows per batch when reading parquet.
const READ_BATCH_ROWS: usize = 64 * 1024;

/// A fresh relative path for a data file.
pub(crate) fn data_file_name() -> String {
    format!("part-00000-{}-c000.snappy.parquet", uuid::Uuid::new_v4())
}

/// A fresh relative path for a change-data file.
pub(crate) fn cdc_file_name() -> String {
    format!("{CHANGE_DATA_DIR}/cdc-00000-{}.c000.snappy.parquet", uuid::Uuid::new_v4())
}

/// Snappy, row groups of [`ROW_GROUP_ROWS`]; no dictionary for a
/// single-column primary key: its values are unique in every file, so the
/// dictionary only costs time (hashing each value: ~6 % of the CPU of a
/// snapshot) until parquet gives up on it.
fn properties(layout: &TableLayout) -> WriterProperties {
    let mut builder = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_created_by(format!("tributary {}", env!("CARGO_PKG_VERSION")));
    if let [key] = layout.pk.as_slice() {
        let name = layout.source.columns[*key].name.clone();
        let path = deltalake::parquet::schema::types::ColumnPath::from(name);
        builder = builder.set_column_dictionary_enabled(path.clone(), false);
        // An integer key, mostly written in key order: deltas pack into a
        // few bits, so the planner's key lookups (which read this column of
        // every candidate file) decode a fraction of the bytes. Spark 3.3+,
        // DuckDB and delta-rs read the encoding.
        if matches!(layout.arrow.field(*key).data_type(), ArrowType::Int32 | ArrowType::Int64) {
            builder = builder.set_column_encoding(path, deltalake::parquet::basic::Encoding::DELTA_BINARY_PACKED);
        }
    }
    builder.build()
}

/// Why a file operation failed.
#[derive(Debug)]
pub(crate) enum FileError {
    Io { file: PathBuf, context: &'static str, source: std::io::Error },
    Parquet { file: String, source: ParquetError },
    Store { context: &'static str, source: StoreError },
}

impl FileError {
    pub fn into_delta(self, table: &Path) -> crate::DeltaError {
        match self {
            FileError::Io { file, context, source } => crate::DeltaError::io(table, context, &file, source),
            FileError::Parquet { file, source } => crate::DeltaError::parquet(table, file, source),
            FileError::Store { context, source } => {
                crate::DeltaError::delta(table, context, deltalake::DeltaTableError::ObjectStore { source })
            }
        }
    }
}

/// Where the bytes of a file being written go.
enum FileSink {
    /// The file itself, in a local table.
    Disk(File),
    /// An upload to the object store, part by part.
    Remote(StreamedUpload),
}

impl std::io::Write for FileSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            FileSink::Disk(file) => file.write(buf),
            FileSink::Remote(upload) => upload.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            FileSink::Disk(file) => file.flush(),
            FileSink::Remote(_) => Ok(()),
        }
    }
}

/// A data file being written batch by batch, with its statistics.
pub(crate) struct OpenFile {
    pub rel_path: String,
    files: TableFiles,
    writer: ArrowWriter<FileSink>,
    pub stats: StatsBuilder,
}

impl OpenFile {
    pub fn create(
        files: &TableFiles,
        rel_path: String,
        layout: &TableLayout,
        schema: &SchemaRef,
    ) -> Result<Self, FileError> {
        let sink = match files.local_dir() {
            Some(table_dir) => {
                let abs_path = table_dir.join(&rel_path);
                if let Some(parent) = abs_path.parent() {
                    std::fs::create_dir_all(parent).map_err(|source| FileError::Io {
                        file: parent.to_path_buf(),
                        context: "create directory",
                        source,
                    })?;
                }
                let file = File::create(&abs_path).map_err(|source| FileError::Io {
                    file: abs_path.clone(),
                    context: "create",
                    source,
                })?;
                FileSink::Disk(file)
            }
            None => match files {
                TableFiles::Remote { store, .. } => FileSink::Remote(StreamedUpload::new(store.clone(), &rel_path)),
                TableFiles::Local(_) => unreachable!("a local table has a directory"),
            },
        };
        let writer = ArrowWriter::try_new(sink, schema.clone(), Some(properties(layout)))
            .map_err(|source| FileError::Parquet { file: rel_path.clone(), source })?;
        Ok(OpenFile { rel_path, files: files.clone(), writer, stats: StatsBuilder::new(layout) })
    }

    /// Appends a batch (statistics are taken only for data-file schemas).
    pub fn write(&mut self, batch: &RecordBatch, with_stats: bool) -> Result<(), FileError> {
        if with_stats {
            self.stats.update(batch);
        }
        self.writer.write(batch).map_err(|source| FileError::Parquet { file: self.rel_path.clone(), source })
    }

    pub fn rows(&self) -> i64 {
        self.stats.rows()
    }

    /// Finishes the file; returns its size and statistics.
    pub fn close(self) -> Result<WrittenFile, FileError> {
        let rel_path = self.rel_path;
        let parquet = |source| FileError::Parquet { file: rel_path.clone(), source };
        let sink = self.writer.into_inner().map_err(parquet)?;
        let size = match sink {
            FileSink::Disk(file) => {
                let abs_path = self.files.local_dir().map(|dir| dir.join(&rel_path)).unwrap_or_default();
                file.metadata().map_err(|source| FileError::Io { file: abs_path, context: "stat", source })?.len()
                    as i64
            }
            FileSink::Remote(upload) => {
                upload.finish().map_err(|source| FileError::Store { context: "store a file", source })? as i64
            }
        };
        Ok(WrittenFile { rel_path, size, stats: self.stats.finish() })
    }

    /// Abandons the file and deletes what was written of it (a remote file
    /// was never stored: dropping its upload aborts it).
    pub fn discard(self) {
        drop(self.writer);
        if self.files.local_dir().is_some() {
            self.files.delete(&self.rel_path);
        }
    }
}

/// A finished file.
#[derive(Debug, Clone)]
pub(crate) struct WrittenFile {
    pub rel_path: String,
    pub size: i64,
    pub stats: FileStats,
}

/// Writes `batches` (all of `schema`) as one parquet file.
pub(crate) fn write_file(
    files: &TableFiles,
    rel_path: String,
    layout: &TableLayout,
    schema: &SchemaRef,
    batches: &[RecordBatch],
    with_stats: bool,
) -> Result<WrittenFile, FileError> {
    let mut file = OpenFile::create(files, rel_path, layout, schema)?;
    for b in batches {
        file.write(b, with_stats)?;
    }
    file.close()
}

/// Reads a whole parquet file of the table.
pub(crate) fn read_file(files: &TableFiles, rel_path: &str) -> Result<Vec<RecordBatch>, FileError> {
    open_reader(files, rel_path, READ_BATCH_ROWS)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| FileError::Parquet { file: rel_path.to_string(), source: e.into() })
}

/// Reads the `columns` (by name; `None`: all) of the sorted `rows` (`None`:
/// all) of the table's parquet file `rel_path` of `size` bytes. A remote file
/// is read by byte range: only its footer and the column chunks holding them.
pub(crate) fn read_part(
    files: &TableFiles,
    rel_path: &str,
    size: i64,
    columns: Option<&[String]>,
    rows: Option<&[usize]>,
) -> Result<Vec<RecordBatch>, FileError> {
    match files {
        TableFiles::Local(table_dir) => read_from(open_local(table_dir, rel_path)?, rel_path, columns, rows),
        TableFiles::Remote { store, .. } => read_remote(
            store.clone(),
            rel_path,
            size as u64,
            columns.map(<[String]>::to_vec),
            rows.map(<[usize]>::to_vec),
            READ_BATCH_ROWS,
        )
        .map_err(|source| FileError::Parquet { file: rel_path.to_string(), source }),
    }
}

/// Reads the sorted `rows` (`None`: all) of a parquet file held in memory
/// (a remote file fetched whole, see `apply`).
pub(crate) fn read_fetched(
    bytes: bytes::Bytes,
    rel_path: &str,
    rows: Option<&[usize]>,
) -> Result<Vec<RecordBatch>, FileError> {
    read_from(bytes, rel_path, None, rows)
}

/// The local file `rel_path` of the table at `table_dir`, opened for reading.
fn open_local(table_dir: &Path, rel_path: &str) -> Result<File, FileError> {
    let abs_path = resolve(table_dir, rel_path);
    File::open(&abs_path).map_err(|source| FileError::Io { file: abs_path.clone(), context: "open", source })
}

/// Reads the `columns` of the `rows` of the parquet file in `input` (see [`narrow`]).
fn read_from<T: ChunkReader + 'static>(
    input: T,
    rel_path: &str,
    columns: Option<&[String]>,
    rows: Option<&[usize]>,
) -> Result<Vec<RecordBatch>, FileError> {
    let parquet = |source| FileError::Parquet { file: rel_path.to_string(), source };
    let builder = ParquetRecordBatchReaderBuilder::try_new(input).map_err(parquet)?;
    if let Some(batches) = from_statistics(&builder, columns, rows) {
        return Ok(batches);
    }
    narrow(builder, columns, rows)
        .with_batch_size(READ_BATCH_ROWS)
        .build()
        .map_err(parquet)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| parquet(e.into()))
}

/// Some `rows` of some `columns` answered from the row groups' statistics
/// when the columns are constant there ([`crate::constant_columns`]).
pub(crate) fn from_statistics<T>(
    builder: &ArrowReaderBuilder<T>,
    columns: Option<&[String]>,
    rows: Option<&[usize]>,
) -> Option<Vec<RecordBatch>> {
    let (columns, rows) = columns.zip(rows)?;
    crate::constant_columns::rows_from_statistics(builder.metadata(), builder.schema(), columns, rows)
}

/// Limits a parquet reader to the top-level `columns` named (those the file
/// has) and to the sorted `rows`.
pub(crate) fn narrow<T>(
    builder: ArrowReaderBuilder<T>,
    columns: Option<&[String]>,
    rows: Option<&[usize]>,
) -> ArrowReaderBuilder<T> {
    let mut builder = builder;
    if let Some(names) = columns {
        let indices: Vec<usize> = builder
            .schema()
            .fields()
            .iter()
            .enumerate()
            .filter(|(_, f)| names.iter().any(|n| n == f.name()))
            .map(|(i, _)| i)
            .collect();
        let mask = ProjectionMask::roots(builder.parquet_schema(), indices);
        builder = builder.with_projection(mask);
    }
    if let Some(rows) = rows {
        let total = builder.metadata().file_metadata().num_rows() as usize;
        let mut ranges: Vec<std::ops::Range<usize>> = Vec::new();
        for &r in rows {
            match ranges.last_mut() {
                Some(last) if last.end == r => last.end = r + 1,
                _ => ranges.push(r..r + 1),
            }
        }
        builder = builder.with_row_selection(RowSelection::from_consecutive_ranges(ranges.into_iter(), total));
    }
    builder
}

/// A reader of a parquet file of the table, `batch_rows` rows at a time (a
/// remote file is fetched whole, in one request, first).
pub(crate) fn open_reader(
    files: &TableFiles,
    rel_path: &str,
    batch_rows: usize,
) -> Result<ParquetRecordBatchReader, FileError> {
    let parquet = |source| FileError::Parquet { file: rel_path.to_string(), source };
    match files.local_dir() {
        Some(table_dir) => ParquetRecordBatchReaderBuilder::try_new(open_local(table_dir, rel_path)?)
            .map_err(parquet)?
            .with_batch_size(batch_rows)
            .build(),
        None => {
            let bytes = files.get(rel_path).map_err(|source| FileError::Store { context: "read a file", source })?;
            ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(parquet)?.with_batch_size(batch_rows).build()
        }
    }
    .map_err(parquet)
}

/// The local path of a file named in the log (decoded: relative, absolute, or a `file:` URI).
pub(crate) fn resolve(table_dir: &Path, path: &str) -> PathBuf {
    if let Some(rest) = path.strip_prefix("file://") {
        return PathBuf::from(percent_decode(rest));
    }
    table_dir.join(path)
}

/// A path as the log stores it (percent-encoded) in the decoded form actions use.
pub(crate) fn percent_decode(s: &str) -> String {
    if !s.contains('%') {
        return s.to_string();
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One active data file as the writer knows it.
#[derive(Debug, Clone)]
pub(crate) struct FileEntry {
    pub size: i64,
    /// Rows in the file (`numRecords`: deleted ones included).
    pub rows: Option<i64>,
    pub bounds: KeyBounds,
    /// Its deletion vector, decoded, when it has one.
    pub deleted: Option<Arc<Deleted>>,
}

impl FileEntry {
    /// The rows the file's deletion vector deletes, if it has one.
    pub fn deleted_rows(&self) -> Option<&RoaringTreemap> {
        self.deleted.as_ref().map(|d| &d.rows)
    }

    /// The descriptor of the file's deletion vector, if it has one.
    pub fn descriptor(&self) -> Option<&DeletionVectorDescriptor> {
        self.deleted.as_ref().map(|d| &d.descriptor)
    }

    /// Rows the file holds that no deletion vector deletes.
    pub fn live_rows(&self) -> Option<i64> {
        self.rows.map(|n| n - self.deleted_rows().map_or(0, |d| d.len() as i64))
    }
}

/// `batches` (a whole data file, in order) without the rows `deleted` marks.
pub(crate) fn drop_deleted(
    batches: Vec<RecordBatch>,
    deleted: Option<&RoaringTreemap>,
) -> Result<Vec<RecordBatch>, ArrowError> {
    let mut offset = 0u64;
    let mut out = Vec::with_capacity(batches.len());
    for batch in batches {
        let n = batch.num_rows() as u64;
        out.push(drop_deleted_from(batch, offset, deleted)?);
        offset += n;
    }
    Ok(out)
}

/// `batch` without the rows `deleted` marks, the batch holding the file's
/// rows from row number `offset` on.
pub(crate) fn drop_deleted_from(
    batch: RecordBatch,
    offset: u64,
    deleted: Option<&RoaringTreemap>,
) -> Result<RecordBatch, ArrowError> {
    let n = batch.num_rows() as u64;
    match deleted {
        Some(deleted) if deleted.range_cardinality(offset..offset + n) > 0 => {
            let keep = BooleanArray::from_iter((offset..offset + n).map(|r| Some(!deleted.contains(r))));
            filter_record_batch(&batch, &keep)
        }
        _ => Ok(batch),
    }
}

/// The table's active data files by relative path.
#[derive(Debug, Clone, Default)]
pub(crate) struct FileIndex {
    pub files: BTreeMap<String, FileEntry>,
}

impl FileIndex {
    pub fn len(&self) -> usize {
        self.files.len()
    }
}

#[cfg(test)]
mod tests {
    use super::{drop_deleted, drop_deleted_from};
    use deltalake::arrow::array::{Array, Int64Array, RecordBatch};
    use deltalake::arrow::datatypes::{DataType, Field, Schema};
    use roaring::RoaringTreemap;
    use std::sync::Arc;

    fn ids(from: i64, to: i64) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from_iter_values(from..to))]).unwrap()
    }

    fn values(batch: &RecordBatch) -> Vec<i64> {
        batch.column(0).as_any().downcast_ref::<Int64Array>().unwrap().values().to_vec()
    }

    #[test]
    fn a_batch_read_from_the_middle_of_a_file_loses_exactly_the_rows_the_vector_marks_there() {
        // Row numbers of a 30-row file (values = row numbers): 3 and 12 and 25 deleted.
        let deleted: RoaringTreemap = [3u64, 12, 25].into_iter().collect();
        let middle = drop_deleted_from(ids(10, 20), 10, Some(&deleted)).unwrap();
        assert_eq!(values(&middle), (10..20).filter(|&r| r != 12).collect::<Vec<_>>());
        let untouched = drop_deleted_from(ids(13, 20), 13, Some(&deleted)).unwrap();
        assert_eq!(untouched.num_rows(), 7);
        let whole: Vec<i64> = drop_deleted(vec![ids(0, 10), ids(10, 20), ids(20, 30)], Some(&deleted))
            .unwrap()
            .iter()
            .flat_map(values)
            .collect();
        assert_eq!(whole, (0..30).filter(|r| ![3, 12, 25].contains(r)).collect::<Vec<_>>());
        assert_eq!(drop_deleted_from(ids(0, 5), 0, None).unwrap().num_rows(), 5);
    }
}
