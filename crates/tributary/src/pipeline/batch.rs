//! Micro-batches of whole transactions, split per table for the Delta sink,
//! and the parts of a transaction too large for one batch (see
//! [`super::assembler`]).

use super::assembler::{FinishedParts, TransactionPart};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tributary_core::{SourcePosition, TableId, Transaction};
use tributary_delta::{SourcedChange, TableBatch};

/// A whole transaction of the batch; `parts` when its first changes were
/// applied in parts already and the transaction holds only the rest.
#[derive(Debug)]
struct Batched {
    txn: Transaction,
    parts: Option<FinishedParts>,
}

/// Whole transactions waiting to be committed, bounded by rows and time.
#[derive(Debug)]
pub struct MicroBatch {
    transactions: Vec<Batched>,
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
    #[cfg(test)]
    pub fn push(&mut self, txn: Transaction) {
        self.push_rest(txn, None);
    }

    /// Adds a whole transaction, or the rest of one whose first changes were
    /// applied in `parts` (the batch's commit lands them too: every table
    /// the parts touched gets an entry, with or without changes here).
    pub fn push_rest(&mut self, txn: Transaction, parts: Option<FinishedParts>) {
        self.rows += txn.changes.len();
        self.opened.get_or_insert_with(Instant::now);
        self.transactions.push(Batched { txn, parts });
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
        for Batched { txn, parts } in self.transactions.drain(..) {
            let (rows_position, first_seq) = match &parts {
                Some(parts) => {
                    for id in &parts.tables {
                        let batch = tables
                            .entry(id.clone())
                            .or_insert_with(|| TableBatch { changes: Vec::new(), position: txn.position.clone() });
                        batch.position = txn.position.clone();
                    }
                    (&parts.rows_position, parts.first_seq)
                }
                None => (&txn.position, 0),
            };
            add_changes(&mut tables, txn.changes, &txn.position, rows_position, txn.commit_ts, first_seq);
        }
        self.rows = 0;
        self.opened = None;
        tables
    }
}

/// A part of a transaction split per table: each table's batch holds the
/// position the part's rows carry (where the transaction began).
pub fn split_part(part: TransactionPart) -> BTreeMap<TableId, TableBatch> {
    let mut tables = BTreeMap::new();
    let txn = part.txn;
    add_changes(&mut tables, txn.changes, &txn.position, &txn.position, txn.commit_ts, part.first_seq);
    tables
}

/// Appends `changes` (of one transaction committed at `position`, the first
/// of them its `first_seq`-th change) to their tables' batches; the rows
/// carry `rows_position`.
fn add_changes(
    tables: &mut BTreeMap<TableId, TableBatch>,
    changes: Vec<(std::sync::Arc<tributary_core::TableSchema>, tributary_core::RowChange)>,
    position: &SourcePosition,
    rows_position: &SourcePosition,
    commit_ts: i64,
    first_seq: usize,
) {
    for (seq, (schema, change)) in changes.into_iter().enumerate() {
        let batch = tables
            .entry(schema.id.clone())
            .or_insert_with(|| TableBatch { changes: Vec::new(), position: position.clone() });
        batch.position = position.clone();
        batch.changes.push(SourcedChange {
            change,
            position: rows_position.clone(),
            commit_ts,
            change_seq: (first_seq + seq) as i64,
        });
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
