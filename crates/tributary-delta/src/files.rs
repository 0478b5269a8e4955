//! Data and change-data files on disk: names, parquet writing (whole or
//! streamed), reading back, and the in-memory index of a table's active data
//! files with their primary-key bounds.

use crate::key::KeyBounds;
use crate::schema::TableLayout;
use crate::stats::{FileStats, StatsBuilder};
use deltalake::arrow::array::RecordBatch;
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use deltalake::parquet::arrow::ArrowWriter;
use deltalake::parquet::basic::Compression;
use deltalake::parquet::errors::ParquetError;
use deltalake::parquet::file::properties::WriterProperties;
use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

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

fn properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_created_by(format!("tributary {}", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Why a file operation failed.
#[derive(Debug)]
pub(crate) enum FileError {
    Io { file: PathBuf, context: &'static str, source: std::io::Error },
    Parquet { file: String, source: ParquetError },
}

impl FileError {
    pub fn into_delta(self, table: &Path) -> crate::DeltaError {
        match self {
            FileError::Io { file, context, source } => crate::DeltaError::io(table, context, &file, source),
            FileError::Parquet { file, source } => crate::DeltaError::parquet(table, file, source),
        }
    }
}

/// A data file being written batch by batch, with its statistics.
pub(crate) struct OpenFile {
    pub rel_path: String,
    abs_path: PathBuf,
    writer: ArrowWriter<File>,
    pub stats: StatsBuilder,
}

impl OpenFile {
    pub fn create(
        table_dir: &Path,
        rel_path: String,
        layout: &TableLayout,
        schema: &SchemaRef,
    ) -> Result<Self, FileError> {
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
        let writer = ArrowWriter::try_new(file, schema.clone(), Some(properties()))
            .map_err(|source| FileError::Parquet { file: rel_path.clone(), source })?;
        Ok(OpenFile { rel_path, abs_path, writer, stats: StatsBuilder::new(layout) })
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
        self.writer.close().map_err(|source| FileError::Parquet { file: rel_path.clone(), source })?;
        let size = std::fs::metadata(&self.abs_path)
            .map_err(|source| FileError::Io { file: self.abs_path.clone(), context: "stat", source })?
            .len() as i64;
        Ok(WrittenFile { rel_path, size, stats: self.stats.finish() })
    }

    /// Abandons the file and deletes what was written of it.
    pub fn discard(self) {
        let path = self.abs_path.clone();
        drop(self.writer);
        let _ = std::fs::remove_file(path);
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
    table_dir: &Path,
    rel_path: String,
    layout: &TableLayout,
    schema: &SchemaRef,
    batches: &[RecordBatch],
    with_stats: bool,
) -> Result<WrittenFile, FileError> {
    let mut file = OpenFile::create(table_dir, rel_path, layout, schema)?;
    for b in batches {
        file.write(b, with_stats)?;
    }
    file.close()
}

/// Reads a whole parquet file of the table.
pub(crate) fn read_file(table_dir: &Path, rel_path: &str) -> Result<Vec<RecordBatch>, FileError> {
    let abs_path = resolve(table_dir, rel_path);
    let file =
        File::open(&abs_path).map_err(|source| FileError::Io { file: abs_path.clone(), context: "open", source })?;
    let parquet = |source| FileError::Parquet { file: rel_path.to_string(), source };
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(parquet)?
        .with_batch_size(READ_BATCH_ROWS)
        .build()
        .map_err(parquet)?;
    reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| FileError::Parquet { file: rel_path.to_string(), source: e.into() })
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
    pub rows: Option<i64>,
    pub bounds: KeyBounds,
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
