//! Change events as sources emit them, and whole transactions as sinks apply them.

use crate::{Row, SourcePosition, TableId, TableSchema};
use std::sync::Arc;

/// One event of a source stream, in source order. Row events sit between a
/// `Begin` and a `Commit`; the `Commit` position is the one a sink stores.
/// Timestamps are microseconds since the Unix epoch (UTC).
#[derive(Debug, Clone, PartialEq)]
pub enum ChangeEvent {
    Begin {
        position: SourcePosition,
        commit_ts: i64,
    },
    Insert {
        table: Arc<TableSchema>,
        position: SourcePosition,
        commit_ts: i64,
        after: Row,
    },
    Update {
        table: Arc<TableSchema>,
        position: SourcePosition,
        commit_ts: i64,
        before: Row,
        after: Row,
    },
    Delete {
        table: Arc<TableSchema>,
        position: SourcePosition,
        commit_ts: i64,
        before: Row,
    },
    Truncate {
        table: Arc<TableSchema>,
        position: SourcePosition,
        commit_ts: i64,
    },
    /// The table's schema from this position on.
    SchemaChange {
        table: Arc<TableSchema>,
        position: SourcePosition,
        commit_ts: i64,
        /// The statement (MySQL) or a description (PostgreSQL).
        ddl: String,
        /// Columns the source says were renamed, `(from, to)`.
        renamed: Vec<(String, String)>,
    },
    Commit {
        position: SourcePosition,
        commit_ts: i64,
    },
    /// Outside any transaction: everything before `position` has been sent,
    /// so once the sink holds it all, the source may be acknowledged up to
    /// here. `commit_ts` is when the heartbeat was written (PostgreSQL logical
    /// heartbeat messages).
    Heartbeat {
        position: SourcePosition,
        commit_ts: i64,
    },
}

impl ChangeEvent {
    /// Where this event stands in the source stream.
    pub fn position(&self) -> &SourcePosition {
        match self {
            ChangeEvent::Begin { position, .. }
            | ChangeEvent::Insert { position, .. }
            | ChangeEvent::Update { position, .. }
            | ChangeEvent::Delete { position, .. }
            | ChangeEvent::Truncate { position, .. }
            | ChangeEvent::SchemaChange { position, .. }
            | ChangeEvent::Commit { position, .. }
            | ChangeEvent::Heartbeat { position, .. } => position,
        }
    }

    /// The table a row or DDL event touches; `None` for Begin / Commit.
    pub fn table_id(&self) -> Option<&TableId> {
        match self {
            ChangeEvent::Insert { table, .. }
            | ChangeEvent::Update { table, .. }
            | ChangeEvent::Delete { table, .. }
            | ChangeEvent::Truncate { table, .. }
            | ChangeEvent::SchemaChange { table, .. } => Some(&table.id),
            ChangeEvent::Begin { .. } | ChangeEvent::Commit { .. } | ChangeEvent::Heartbeat { .. } => None,
        }
    }
}

/// One row change of a transaction, without the transaction's header.
#[derive(Debug, Clone, PartialEq)]
pub enum RowChange {
    Insert { after: Row },
    Update { before: Row, after: Row },
    Delete { before: Row },
    Truncate,
}

/// A whole source transaction: its changes per table in source order, and the
/// position of its commit (the one stored with the data).
#[derive(Debug, Clone, PartialEq)]
pub struct Transaction {
    pub position: SourcePosition,
    pub commit_ts: i64,
    /// `(table schema, change)` in source order.
    pub changes: Vec<(Arc<TableSchema>, RowChange)>,
    /// Schema changes in this transaction, in order.
    pub schema_changes: Vec<SchemaChangeAt>,
}

/// A schema change inside a transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaChangeAt {
    /// Index into the transaction's changes from which `table` holds.
    pub index: usize,
    /// The table's new schema.
    pub table: Arc<TableSchema>,
    /// The statement, when the source logs it (MySQL), else a description.
    pub ddl: String,
    /// Columns the source says were renamed, `(from, to)`.
    pub renamed: Vec<(String, String)>,
}

impl Transaction {
    /// An empty transaction committed at `position`.
    pub fn new(position: SourcePosition, commit_ts: i64) -> Self {
        Transaction { position, commit_ts, changes: Vec::new(), schema_changes: Vec::new() }
    }
}
