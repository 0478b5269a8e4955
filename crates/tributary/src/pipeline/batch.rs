//! Micro-batches of whole transactions, split per table for the Delta sink.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tributary_core::{TableId, Transaction};
use tributary_delta::{SourcedChange, TableBatch};

/// Whole transactions waiting to be committed, bounded by rows and time.
#[derive(Debug)]
pub struct MicroBatch {
    transactions: Vec<Transaction>,
    rows: usize,
    opened: Option<Instant>,
    max_rows: usize,
    max_wait: Duration,
}

impl MicroBatch {
    pub fn new(max_rows: usize, max_wait: Duration) -> Self {
        MicroBatch { transactions: Vec::new(), rows: 0, opened: None, max_rows, max_wait }
    }

    /// Adds a whole transaction.
    pub fn push(&mut self, txn: Transaction) {
        self.rows += txn.changes.len();
        self.opened.get_or_insert_with(Instant::now);
        self.transactions.push(txn);
    }

    /// True when the batch has reached its row bound or waited long enough.
    pub fn is_due(&self) -> bool {
        self.rows >= self.max_rows || self.opened.is_some_and(|t| t.elapsed() >= self.max_wait)
    }

    /// When the time bound falls due (None while empty).
    pub fn deadline(&self) -> Option<Instant> {
        self.opened.map(|t| t + self.max_wait)
    }

    pub fn is_empty(&self) -> bool {
        self.transactions.is_empty()
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Empties the batch into per-table batches, changes in source order; each
    /// table's position is the commit position of its last transaction here.
    pub fn split_per_table(&mut self) -> BTreeMap<TableId, TableBatch> {
        let mut tables: BTreeMap<TableId, TableBatch> = BTreeMap::new();
        for txn in self.transactions.drain(..) {
            for (seq, (schema, change)) in txn.changes.into_iter().enumerate() {
                let batch = tables
                    .entry(schema.id.clone())
                    .or_insert_with(|| TableBatch { changes: Vec::new(), position: txn.position.clone() });
                batch.position = txn.position.clone();
                batch.changes.push(SourcedChange {
                    change,
                    position: txn.position.clone(),
                    commit_ts: txn.commit_ts,
                    change_seq: seq as i64,
                });
            }
        }
        self.rows = 0;
        self.opened = None;
        tables
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tributary_core::{MySqlPosition, RowChange, SourcePosition, TableSchema, Value};

    fn txn(offset: u64, tables: &[&str]) -> Transaction {
        let changes = tables
            .iter()
            .map(|t| {
                let schema = Arc::new(TableSchema { id: TableId::new("db", *t), columns: vec![], primary_key: vec![] });
                (schema, RowChange::Insert { after: vec![Value::Int(offset as i64)] })
            })
            .collect();
        let mut txn = Transaction::new(SourcePosition::MySql(MySqlPosition::new("b.000001", offset)), 0);
        txn.changes = changes;
        txn
    }

    #[test]
    fn each_table_gets_its_changes_in_order_and_its_last_position() {
        let mut b = MicroBatch::new(10, Duration::from_secs(60));
        b.push(txn(100, &["a", "b"]));
        b.push(txn(200, &["a"]));
        b.push(txn(300, &["b", "b"]));
        assert_eq!(b.rows(), 5);
        let split = b.split_per_table();
        let a = &split[&TableId::new("db", "a")];
        let bb = &split[&TableId::new("db", "b")];
        assert_eq!(a.changes.len(), 2);
        assert_eq!(a.position.as_mysql().unwrap().offset, 200);
        assert_eq!(bb.changes.len(), 3);
        assert_eq!(bb.position.as_mysql().unwrap().offset, 300);
        assert_eq!(bb.changes[0].position.as_mysql().unwrap().offset, 100);
        // The index within the source transaction, over all its tables.
        let seqs: Vec<i64> = bb.changes.iter().map(|c| c.change_seq).collect();
        assert_eq!(seqs, [1, 0, 1]);
        assert!(b.is_empty());
    }

    #[test]
    fn the_row_bound_makes_the_batch_due() {
        let mut b = MicroBatch::new(2, Duration::from_secs(60));
        b.push(txn(1, &["a"]));
        assert!(!b.is_due());
        b.push(txn(2, &["a"]));
        assert!(b.is_due());
    }
}
