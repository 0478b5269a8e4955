//! Errors of binlog decoding: each message is one line naming the cause, where
//! in the binlog it happened (file and byte offset of the event) and the fix.

use std::io;

/// An error decoding a binlog (file or live stream) into change events.
///
/// Offsets are byte offsets of the *start* of the offending event in the
/// named binlog file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The binlog file could not be opened or read.
    #[error("cannot read binlog file {file}: {source}; check that the path exists and is readable")]
    Io {
        file: String,
        #[source]
        source: io::Error,
    },
    /// The file does not start with the binlog magic bytes.
    #[error("{file} is not a binlog file (it does not start with the bytes fe 62 69 6e at byte offset 0); pass a MySQL / MariaDB binary log")]
    NotABinlog { file: String },
    /// The file ends in the middle of an event.
    #[error("binlog {file} is truncated at byte offset {offset}: {detail}; the file was cut short (copy it again, or wait until the server has finished writing it)")]
    Truncated { file: String, offset: u64, detail: String },
    /// An event's bytes do not parse (or fail their checksum).
    #[error("corrupt {event} event in binlog {file} at byte offset {offset}: {reason}; the binlog is damaged: restore the file from the server or resume from a later position")]
    Corrupt { file: String, offset: u64, event: String, reason: String },
    /// A rows event names a table id no TABLE_MAP event announced.
    #[error("rows event in binlog {file} at byte offset {offset} refers to table id {table_id}, which no TABLE_MAP event announced; start decoding at a transaction boundary (the position of a Commit event)")]
    UnknownTable { file: String, offset: u64, table_id: u64 },
    /// The binlog's columns of a table cannot be matched with its schema.
    #[error("table {table} in binlog {file} at byte offset {offset}: {detail}")]
    SchemaMismatch { table: String, file: String, offset: u64, detail: String },
    /// A row image lacks a column (binlog_row_image is not FULL).
    #[error("table {table}: the {image} image of a row event in binlog {file} at byte offset {offset} lacks column {column}; CDC needs full row images: run SET GLOBAL binlog_row_image='FULL' on the source")]
    MissingColumns { table: String, column: String, image: &'static str, file: String, offset: u64 },
    /// A partial JSON update (binlog_row_value_options=PARTIAL_JSON) that cannot be applied.
    #[error("partial JSON update of {table} column {column} in binlog {file} at byte offset {offset} cannot be applied: {reason}; run SET GLOBAL binlog_row_value_options='' on the source so full JSON documents are logged")]
    PartialJson { table: String, column: String, file: String, offset: u64, reason: String },
    /// A data change logged as an SQL statement instead of row events.
    #[error("statement-based change in binlog {file} at byte offset {offset} ({query}); CDC decodes row events only: run SET GLOBAL binlog_format='ROW' on the source and end the sessions that set binlog_format to STATEMENT or MIXED")]
    StatementBased { file: String, offset: u64, query: String },
    /// An event kind Tributary cannot turn into correct change events.
    #[error("{what} in binlog {file} at byte offset {offset} is not supported; {fix}")]
    Unsupported { what: String, file: String, offset: u64, fix: String },
    /// A cell value cannot be converted to its column's type.
    #[error("cannot decode {table} column {column} ({source_type}): {reason}")]
    Value { table: String, column: String, source_type: String, reason: String },
    /// A schema resolver refused a table (message written by the resolver).
    #[error("{0}")]
    Schema(String),
    /// An error raised while decoding one event, with where that event is.
    #[error("{source} (event in binlog {file} at byte offset {offset})")]
    InEvent {
        file: String,
        offset: u64,
        #[source]
        source: Box<DecodeError>,
    },
}

impl DecodeError {
    /// A schema resolver's refusal; the message should name the table and the fix.
    pub fn schema(message: impl Into<String>) -> Self {
        DecodeError::Schema(message.into())
    }

    /// The error itself, without the [`DecodeError::InEvent`] wrapper that says where it happened.
    pub fn cause(&self) -> &DecodeError {
        match self {
            DecodeError::InEvent { source, .. } => source.cause(),
            other => other,
        }
    }

    /// Adds the event's place to errors that do not name it yet.
    pub(crate) fn in_event(self, file: &str, offset: u64) -> Self {
        match self {
            DecodeError::Value { .. } | DecodeError::Schema(_) => {
                DecodeError::InEvent { file: file.to_string(), offset, source: Box::new(self) }
            }
            other => other,
        }
    }
}
