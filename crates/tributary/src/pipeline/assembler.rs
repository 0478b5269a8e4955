//! Turns the ordered event stream into whole source transactions, and hands
//! on a transaction too large to hold whole in parts before its commit is
//! read (bounded memory for huge transactions).
//!
//! A transaction whose buffered changes reach the part size
//! (`pipeline.transaction_part_rows`) is given to the
//! sink in parts ([`TransactionAssembler::take_part`]): each part's files are
//! written but nothing is committed; the rest arrives with the commit and
//! lands with every part in one Delta commit per table (see
//! `tributary_delta`'s `transaction_parts`). The commit position is unknown
//! until the commit is read, so every row of a transaction applied in parts
//! carries the position where it began (MariaDB / MySQL: the end of its
//! GTID / BEGIN event; PostgreSQL: BEGIN announces the commit LSN itself),
//! which still orders it after every earlier transaction and before every
//! later one; the table's stored position is the commit's. A transaction
//! that changes a table's schema (PostgreSQL DDL inside a transaction) is
//! never split; one that changes a schema after its first part was handed on
//! fails with [`AssemblyError::SchemaChangeAfterParts`].

use std::collections::BTreeSet;
use std::sync::Arc;
use tributary_core::{ChangeEvent, RowChange, SchemaChangeAt, SourcePosition, TableId, TableSchema, Transaction};

/// Collects the events between a `Begin` and its `Commit`.
#[derive(Debug, Default)]
pub struct TransactionAssembler {
    open: Option<Transaction>,
    /// The open transaction's parts handed on so far.
    parts: Option<FinishedParts>,
    /// The parts of the transaction last completed, until taken.
    finished: Option<FinishedParts>,
    /// True when an open transaction with parts handed on was dropped (a
    /// `Begin` without `Commit`): the sink must abandon them.
    dropped_parts: bool,
}

/// One part of an open transaction, handed on before its commit: its
/// position is where the transaction began.
#[derive(Debug)]
pub struct TransactionPart {
    pub txn: Transaction,
    /// The index of the part's first change within the source transaction.
    pub first_seq: usize,
}

/// What the parts of a transaction already handed on leave for its rest.
#[derive(Debug, Clone, PartialEq)]
pub struct FinishedParts {
    /// Where the transaction began: the position every row of it carries.
    pub rows_position: SourcePosition,
    /// The tables its parts changed.
    pub tables: BTreeSet<TableId>,
    /// Changes handed on in parts (the rest's first change has this index).
    pub first_seq: usize,
    /// Parts handed on.
    pub count: usize,
}

/// An event that cannot stand where it was read.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AssemblyError {
    #[error("row event for {table} at {position} outside a transaction; the binlog stream is out of step")]
    OutsideTransaction { table: String, position: String },
    #[error(
        "the transaction at {position} changes the schema of {table} after {changes} of its changes were applied \
         in parts; raise pipeline.transaction_part_rows above the transaction's size (0: never split) so that \
         it is applied whole"
    )]
    SchemaChangeAfterParts { table: String, position: String, changes: usize },
}

impl TransactionAssembler {
    /// True between a `Begin` and its `Commit`.
    pub fn in_transaction(&self) -> bool {
        self.open.is_some()
    }

    /// When the open transaction holds `part_rows` changes or more (and no
    /// schema change): takes them out as a part to apply before its commit.
    pub fn take_part(&mut self, part_rows: usize) -> Option<TransactionPart> {
        let open = self.open.as_mut()?;
        if open.changes.len() < part_rows.max(1) || !open.schema_changes.is_empty() {
            return None;
        }
        let changes = std::mem::take(&mut open.changes);
        let parts = self.parts.get_or_insert_with(|| FinishedParts {
            rows_position: open.position.clone(),
            tables: BTreeSet::new(),
            first_seq: 0,
            count: 0,
        });
        let first_seq = parts.first_seq;
        parts.tables.extend(changes.iter().map(|(schema, _)| schema.id.clone()));
        parts.first_seq += changes.len();
        parts.count += 1;
        let mut txn = Transaction::new(open.position.clone(), open.commit_ts);
        txn.changes = changes;
        Some(TransactionPart { txn, first_seq })
    }

    /// The parts of the transaction the last [`TransactionAssembler::push`]
    /// completed, if it was handed on in parts.
    pub fn take_finished_parts(&mut self) -> Option<FinishedParts> {
        self.finished.take()
    }

    /// True (once) when a transaction with parts handed on was dropped
    /// without its commit: the sink must abandon those parts.
    pub fn take_dropped_parts(&mut self) -> bool {
        std::mem::take(&mut self.dropped_parts)
    }

    /// Feeds one event; returns a transaction when `event` completes one.
    pub fn push(&mut self, event: ChangeEvent) -> Result<Option<Transaction>, AssemblyError> {
        let (table, change): (Arc<TableSchema>, RowChange) = match event {
            ChangeEvent::Begin { position, commit_ts } => {
                // A Begin without Commit means the server rolled back or we resumed mid-way:
                // drop what was open (it was never committed upstream).
                self.dropped_parts |= self.parts.take().is_some();
                self.open = Some(Transaction::new(position, commit_ts));
                return Ok(None);
            }
            ChangeEvent::Commit { position, commit_ts } => {
                let Some(mut txn) = self.open.take() else { return Ok(None) };
                let parts = self.parts.take();
                if let (Some(parts), Some(change)) = (&parts, txn.schema_changes.first()) {
                    return Err(AssemblyError::SchemaChangeAfterParts {
                        table: change.table.id.to_string(),
                        position: position.to_string(),
                        changes: parts.first_seq,
                    });
                }
                self.finished = parts;
                txn.position = position;
                if commit_ts > 0 {
                    txn.commit_ts = commit_ts;
                }
                return Ok(Some(txn));
            }
            ChangeEvent::Insert { table, after, .. } => (table, RowChange::Insert { after }),
            ChangeEvent::Update { table, before, after, .. } => (table, RowChange::Update { before, after }),
            ChangeEvent::Delete { table, before, .. } => (table, RowChange::Delete { before }),
            ChangeEvent::Truncate { table, .. } => (table, RowChange::Truncate),
            ChangeEvent::SchemaChange { table, position, commit_ts, ddl, renamed } => {
                return Ok(match self.open.as_mut() {
                    // Inside a transaction (PostgreSQL): for the table's rows from here on.
                    Some(txn) => {
                        txn.schema_changes.push(SchemaChangeAt { index: txn.changes.len(), table, ddl, renamed });
                        None
                    }
                    // A DDL statement is its own transaction (MySQL).
                    None => {
                        let mut txn = Transaction::new(position, commit_ts);
                        txn.schema_changes.push(SchemaChangeAt { index: 0, table, ddl, renamed });
                        Some(txn)
                    }
                });
            }
            ChangeEvent::Heartbeat { .. } => return Ok(None),
        };
        match self.open.as_mut() {
            Some(txn) => {
                txn.changes.push((table, change));
                Ok(None)
            }
            None => Err(AssemblyError::OutsideTransaction { table: table.id.to_string(), position: String::new() }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tributary_core::{MySqlPosition, SourcePosition, TableId, Value};

    fn pos(offset: u64) -> SourcePosition {
        SourcePosition::MySql(MySqlPosition::new("bin.000001", offset))
    }

    fn table() -> Arc<TableSchema> {
        Arc::new(TableSchema { id: TableId::new("db", "t"), columns: vec![], primary_key: vec![] })
    }

    #[test]
    fn a_transaction_is_released_at_its_commit_with_the_commit_position() {
        let mut a = TransactionAssembler::default();
        assert_eq!(a.push(ChangeEvent::Begin { position: pos(10), commit_ts: 5 }).unwrap(), None);
        let insert =
            ChangeEvent::Insert { table: table(), position: pos(20), commit_ts: 5, after: vec![Value::Int(1)] };
        assert_eq!(a.push(insert).unwrap(), None);
        assert!(a.open.is_some());
        let txn = a.push(ChangeEvent::Commit { position: pos(30), commit_ts: 5 }).unwrap().unwrap();
        assert_eq!(txn.position, pos(30));
        assert_eq!(txn.changes.len(), 1);
        assert!(a.open.is_none());
    }

    #[test]
    fn a_begin_without_commit_is_dropped_by_the_next_begin() {
        let mut a = TransactionAssembler::default();
        a.push(ChangeEvent::Begin { position: pos(10), commit_ts: 5 }).unwrap();
        let insert = ChangeEvent::Insert { table: table(), position: pos(20), commit_ts: 5, after: vec![] };
        a.push(insert).unwrap();
        a.push(ChangeEvent::Begin { position: pos(40), commit_ts: 6 }).unwrap();
        let txn = a.push(ChangeEvent::Commit { position: pos(50), commit_ts: 6 }).unwrap().unwrap();
        assert!(txn.changes.is_empty());
    }

    #[test]
    fn schema_changes_mark_where_they_take_effect() {
        let mut a = TransactionAssembler::default();
        let ddl = ChangeEvent::SchemaChange {
            table: table(),
            position: pos(5),
            commit_ts: 1,
            ddl: "ALTER".into(),
            renamed: vec![],
        };
        let txn = a.push(ddl.clone()).unwrap().expect("a DDL outside a transaction is one");
        assert_eq!((txn.position, txn.schema_changes.len(), txn.changes.len()), (pos(5), 1, 0));
        a.push(ChangeEvent::Begin { position: pos(10), commit_ts: 5 }).unwrap();
        let insert = ChangeEvent::Insert { table: table(), position: pos(20), commit_ts: 5, after: vec![] };
        a.push(insert.clone()).unwrap();
        assert_eq!(a.push(ddl).unwrap(), None);
        a.push(insert).unwrap();
        let txn = a.push(ChangeEvent::Commit { position: pos(30), commit_ts: 5 }).unwrap().unwrap();
        assert_eq!(txn.schema_changes.iter().map(|c| c.index).collect::<Vec<_>>(), [1]);
        assert_eq!(txn.changes.len(), 2);
    }

    #[test]
    fn a_large_transaction_is_handed_on_in_parts_that_remember_where_it_began() {
        let mut a = TransactionAssembler::default();
        a.push(ChangeEvent::Begin { position: pos(10), commit_ts: 5 }).unwrap();
        let insert = |v: i64| ChangeEvent::Insert {
            table: table(),
            position: pos(20),
            commit_ts: 5,
            after: vec![Value::Int(v)],
        };
        for v in 0..3 {
            a.push(insert(v)).unwrap();
        }
        assert!(a.take_part(4).is_none(), "below the part size");
        a.push(insert(3)).unwrap();
        let part = a.take_part(4).expect("a part");
        assert_eq!((part.txn.position.clone(), part.first_seq, part.txn.changes.len()), (pos(10), 0, 4));
        for v in 4..9 {
            a.push(insert(v)).unwrap();
        }
        let part = a.take_part(4).expect("a second part");
        assert_eq!((part.first_seq, part.txn.changes.len()), (4, 5));
        a.push(insert(9)).unwrap();
        let rest = a.push(ChangeEvent::Commit { position: pos(30), commit_ts: 5 }).unwrap().unwrap();
        assert_eq!((rest.position, rest.changes.len()), (pos(30), 1));
        let parts = a.take_finished_parts().expect("it was handed on in parts");
        assert_eq!((parts.rows_position, parts.first_seq, parts.count), (pos(10), 9, 2));
        assert_eq!(parts.tables.len(), 1);
        assert!(a.take_finished_parts().is_none());
        assert!(!a.take_dropped_parts());
    }

    #[test]
    fn a_transaction_dropped_after_parts_tells_the_sink_to_abandon_them() {
        let mut a = TransactionAssembler::default();
        a.push(ChangeEvent::Begin { position: pos(10), commit_ts: 5 }).unwrap();
        a.push(ChangeEvent::Insert { table: table(), position: pos(20), commit_ts: 5, after: vec![] }).unwrap();
        assert!(a.take_part(1).is_some());
        a.push(ChangeEvent::Begin { position: pos(40), commit_ts: 6 }).unwrap();
        assert!(a.take_dropped_parts());
        let txn = a.push(ChangeEvent::Commit { position: pos(50), commit_ts: 6 }).unwrap().unwrap();
        assert!(txn.changes.is_empty());
        assert!(a.take_finished_parts().is_none());
    }

    #[test]
    fn a_row_outside_a_transaction_is_an_error() {
        let mut a = TransactionAssembler::default();
        let insert = ChangeEvent::Insert { table: table(), position: pos(20), commit_ts: 5, after: vec![] };
        assert!(a.push(insert).is_err());
    }
}
