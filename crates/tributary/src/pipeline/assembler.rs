//! Turns the ordered event stream into whole source transactions.

use std::sync::Arc;
use tributary_core::{ChangeEvent, RowChange, SchemaChangeAt, TableSchema, Transaction};

/// Collects the events between a `Begin` and its `Commit`.
#[derive(Debug, Default)]
pub struct TransactionAssembler {
    open: Option<Transaction>,
}

/// An event that cannot stand where it was read.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AssemblyError {
    #[error("row event for {table} at {position} outside a transaction; the binlog stream is out of step")]
    OutsideTransaction { table: String, position: String },
}

impl TransactionAssembler {
    /// True between a `Begin` and its `Commit`.
    pub fn in_transaction(&self) -> bool {
        self.open.is_some()
    }

    /// Feeds one event; returns a transaction when `event` completes one.
    pub fn push(&mut self, event: ChangeEvent) -> Result<Option<Transaction>, AssemblyError> {
        let (table, change): (Arc<TableSchema>, RowChange) = match event {
            ChangeEvent::Begin { position, commit_ts } => {
                // A Begin without Commit means the server rolled back or we resumed mid-way:
                // drop what was open (it was never committed upstream).
                self.open = Some(Transaction::new(position, commit_ts));
                return Ok(None);
            }
            ChangeEvent::Commit { position, commit_ts } => {
                return Ok(self.open.take().map(|mut txn| {
                    txn.position = position;
                    if commit_ts > 0 {
                        txn.commit_ts = commit_ts;
                    }
                    txn
                }));
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
    fn a_row_outside_a_transaction_is_an_error() {
        let mut a = TransactionAssembler::default();
        let insert = ChangeEvent::Insert { table: table(), position: pos(20), commit_ts: 5, after: vec![] };
        assert!(a.push(insert).is_err());
    }
}
