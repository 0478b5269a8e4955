//! Errors of the Delta sink. Every message is one line naming the table path
//! and the cause; [`Retryable::class`] says whether retrying can help.

use deltalake::kernel::transaction::TransactionError;
use deltalake::DeltaTableError;
use std::path::PathBuf;
use tributary_core::position::PositionError;
use tributary_core::{ErrorClass, Retryable};

/// An error of the Delta sink.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeltaError {
    /// A config field breaks its rule.
    #[error("config field {field}: {problem}")]
    Config { field: &'static str, problem: String },

    /// Another writer committed to the table and its changes conflict with ours.
    #[error("delta table {}: concurrent commit conflict: {source}", table.display())]
    CommitConflict {
        table: PathBuf,
        #[source]
        source: Box<DeltaTableError>,
    },

    /// Commits of other writers kept landing between planning and committing
    /// a batch; every attempt was re-judged (and re-planned) and lost again.
    /// Nothing of the batch was committed.
    #[error(
        "delta table {}: the commit lost against other writers' commits {attempts} times in a row (table now at \
         version {version}); see what else writes the table so often (e.g. an OPTIMIZE loop) and start again",
        table.display()
    )]
    ConflictRetriesExhausted { table: PathBuf, attempts: u32, version: i64 },

    /// Another writer's commit did something this writer must not follow or
    /// paper over (another process of the same pipeline, a table feature or
    /// schema Tributary cannot write). Nothing of the batch was committed.
    #[error("delta table {}: commit {version} by another writer ({operation}) {problem}", table.display())]
    ForeignChange { table: PathBuf, version: i64, operation: String, problem: String },

    /// The offered source position is at or below the one the table holds: the
    /// batch would be applied twice (or out of order). Nothing was written.
    #[error(
        "delta table {}: refusing to commit source version {offered} at or below the committed txn version {stored}; \
         the pipeline must skip changes the table already holds",
        table.display()
    )]
    PositionBackwards { table: PathBuf, stored: i64, offered: i64 },

    /// A source position cannot be stored as a Delta txn version.
    #[error("delta table {}: source position {position} cannot be stored: {source}", table.display())]
    Position {
        table: PathBuf,
        position: String,
        #[source]
        source: PositionError,
    },

    /// A delta-rs operation failed.
    #[error("delta table {}: {context}: {source}", table.display())]
    Delta {
        table: PathBuf,
        context: &'static str,
        #[source]
        source: Box<DeltaTableError>,
    },

    /// Reading or writing a file of the table failed.
    #[error("delta table {}: {context} {}: {source}", table.display(), file.display())]
    Io {
        table: PathBuf,
        context: &'static str,
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// Encoding or decoding a parquet data file failed.
    #[error("delta table {}: parquet file {file}: {source}", table.display())]
    Parquet {
        table: PathBuf,
        file: String,
        #[source]
        source: deltalake::parquet::errors::ParquetError,
    },

    /// An arrow computation on table data failed.
    #[error("delta table {}: {context}: {source}", table.display())]
    Arrow {
        table: PathBuf,
        context: &'static str,
        #[source]
        source: deltalake::arrow::error::ArrowError,
    },

    /// A value does not fit its column.
    #[error("delta table {}: column {column}: {problem}", table.display())]
    Encode { table: PathBuf, column: String, problem: String },

    /// The source's schema changed in a way the table cannot follow.
    #[error("delta table {}: {source}", table.display())]
    SchemaChange {
        table: PathBuf,
        #[source]
        source: crate::evolve::SchemaChangeError,
    },

    /// The table on disk does not have the schema the source table maps to.
    #[error("delta table {}: schema differs from the source table: {problem}; the table was written by an older Tributary or changed by another writer: move the table directory aside and start again to copy it anew", table.display())]
    SchemaMismatch { table: PathBuf, problem: String },

    /// The table belongs to another pipeline or another source.
    #[error(
        "delta table {} belongs to {owner}; this pipeline ({ours}) does not write it: give this pipeline another \
         sink.delta.root or sink.delta.table_prefix, or, once a person decided that it takes the table over, run \
         `tributary adopt <database.table> --config <this pipeline's config>`",
        table.display()
    )]
    NotOwner { table: PathBuf, owner: String, ours: String },

    /// The table uses a Delta feature this writer cannot honour.
    #[error("delta table {}: {problem}", table.display())]
    Unsupported { table: PathBuf, problem: String },

    /// An operation was called in a state where it makes no sense (e.g. a
    /// snapshot chunk into a table whose snapshot already finished).
    #[error("delta table {}: {problem}", table.display())]
    State { table: PathBuf, problem: String },

    /// The object store of a remote root cannot serve as a lake (unreachable,
    /// missing bucket, refused credentials, no conditional writes).
    #[error("sink.delta.root {}: {problem}", root.display())]
    Storage { root: PathBuf, problem: String },

    /// The table holds something this writer never writes.
    #[error("delta table {}: unexpected content: {problem}", table.display())]
    Corrupt { table: PathBuf, problem: String },
}

impl DeltaError {
    /// Wraps a delta-rs error, singling out commit conflicts.
    pub(crate) fn delta(table: &std::path::Path, context: &'static str, source: DeltaTableError) -> Self {
        if is_conflict(&source) {
            DeltaError::CommitConflict { table: table.to_path_buf(), source: Box::new(source) }
        } else {
            DeltaError::Delta { table: table.to_path_buf(), context, source: Box::new(source) }
        }
    }

    pub(crate) fn io(
        table: &std::path::Path,
        context: &'static str,
        file: &std::path::Path,
        source: std::io::Error,
    ) -> Self {
        DeltaError::Io { table: table.to_path_buf(), context, file: file.to_path_buf(), source }
    }

    pub(crate) fn parquet(
        table: &std::path::Path,
        file: impl Into<String>,
        source: deltalake::parquet::errors::ParquetError,
    ) -> Self {
        DeltaError::Parquet { table: table.to_path_buf(), file: file.into(), source }
    }

    pub(crate) fn arrow(
        table: &std::path::Path,
        context: &'static str,
        source: deltalake::arrow::error::ArrowError,
    ) -> Self {
        DeltaError::Arrow { table: table.to_path_buf(), context, source }
    }
}

/// True when delta-rs refused a commit because another one took its version.
pub(crate) fn is_conflict(err: &DeltaTableError) -> bool {
    matches!(
        err,
        DeltaTableError::VersionAlreadyExists(_)
            | DeltaTableError::Transaction {
                source: TransactionError::CommitConflict(_)
                    | TransactionError::MaxCommitAttempts(_)
                    | TransactionError::VersionAlreadyExists(_)
            }
    )
}

fn io_class(kind: std::io::ErrorKind) -> ErrorClass {
    use std::io::ErrorKind::*;
    match kind {
        PermissionDenied | StorageFull | ReadOnlyFilesystem | QuotaExceeded | NotADirectory | IsADirectory
        | InvalidFilename => ErrorClass::NeedsOperator,
        InvalidData | UnexpectedEof => ErrorClass::Fatal,
        _ => ErrorClass::Transient,
    }
}

impl Retryable for DeltaError {
    fn class(&self) -> ErrorClass {
        match self {
            DeltaError::CommitConflict { .. } | DeltaError::ConflictRetriesExhausted { .. } => ErrorClass::Transient,
            DeltaError::ForeignChange { .. } => ErrorClass::NeedsOperator,
            DeltaError::PositionBackwards { .. } => ErrorClass::NeedsOperator,
            DeltaError::Config { .. }
            | DeltaError::Position { .. }
            | DeltaError::SchemaMismatch { .. }
            | DeltaError::SchemaChange { .. }
            | DeltaError::Unsupported { .. }
            | DeltaError::NotOwner { .. }
            | DeltaError::State { .. }
            | DeltaError::Storage { .. } => ErrorClass::NeedsOperator,
            DeltaError::Io { source, .. } => io_class(source.kind()),
            DeltaError::Delta { source, .. } => match source.as_ref() {
                DeltaTableError::ObjectStore { source: deltalake::ObjectStoreError::NotFound { .. }, .. } => {
                    ErrorClass::NeedsOperator
                }
                DeltaTableError::ObjectStore { .. } | DeltaTableError::Io { .. } => ErrorClass::Transient,
                DeltaTableError::NotATable(_) | DeltaTableError::InvalidTableLocation(_) => ErrorClass::NeedsOperator,
                _ => ErrorClass::Fatal,
            },
            DeltaError::Parquet { source, .. } => match source {
                deltalake::parquet::errors::ParquetError::External(_) => ErrorClass::Transient,
                _ => ErrorClass::Fatal,
            },
            DeltaError::Arrow { .. } | DeltaError::Encode { .. } | DeltaError::Corrupt { .. } => ErrorClass::Fatal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backwards_positions_need_an_operator_and_name_the_table() {
        let err = DeltaError::PositionBackwards { table: PathBuf::from("/lake/db/t"), stored: 10, offered: 9 };
        assert_eq!(err.class(), ErrorClass::NeedsOperator);
        let msg = err.to_string();
        assert!(msg.contains("/lake/db/t") && msg.contains("10") && msg.contains('9'), "{msg}");
        assert!(!msg.contains('\n'));
    }

    #[test]
    fn commit_conflicts_are_transient() {
        let err = DeltaError::delta(
            std::path::Path::new("/lake/db/t"),
            "commit",
            DeltaTableError::Transaction { source: TransactionError::MaxCommitAttempts(3) },
        );
        assert!(matches!(err, DeltaError::CommitConflict { .. }));
        assert_eq!(err.class(), ErrorClass::Transient);
    }

    #[test]
    fn foreign_changes_need_an_operator_in_one_line() {
        let err = DeltaError::ForeignChange {
            table: PathBuf::from("/lake/db/t"),
            version: 7,
            operation: "SET TBLPROPERTIES".into(),
            problem: "made the table unwritable for Tributary: writer feature deletionVectors is not supported".into(),
        };
        assert_eq!(err.class(), ErrorClass::NeedsOperator);
        let msg = err.to_string();
        assert!(msg.contains("/lake/db/t") && msg.contains("commit 7") && msg.contains("deletionVectors"), "{msg}");
        assert!(!msg.contains('\n'));
        let tired =
            DeltaError::ConflictRetriesExhausted { table: PathBuf::from("/lake/db/t"), attempts: 10, version: 9 };
        assert_eq!(tired.class(), ErrorClass::Transient);
        assert!(!tired.to_string().contains('\n'), "{tired}");
    }

    #[test]
    fn full_disks_need_an_operator() {
        let err = DeltaError::io(
            std::path::Path::new("/lake/db/t"),
            "write",
            std::path::Path::new("/lake/db/t/part-1.parquet"),
            std::io::Error::from(std::io::ErrorKind::StorageFull),
        );
        assert_eq!(err.class(), ErrorClass::NeedsOperator);
    }
}
