//! The Delta table writers of a pipeline, one per source table, and the
//! exactly-once rule: a change at or below a table's committed position is
//! skipped for that table. Source schema changes are applied here, in order
//! with the data; a table whose change Delta cannot follow is stopped (its
//! changes are not committed, its position stays) while the others flow.

use crate::metrics::registry::ErrorKind;
use crate::metrics::Metrics;
use anyhow::Context;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tributary_core::{Row, RowChange, SourcePosition, TableId, TableSchema, Transaction, Value};
use tributary_delta::{CommitStats, DeltaError, DeltaSinkConfig, Owner, TableBatch, TableWriter};

/// What one flush wrote.
#[derive(Debug, Default, Clone, Copy)]
pub struct FlushSummary {
    pub tables_committed: usize,
    pub rows_written: u64,
    pub changes_skipped: usize,
}

/// All table writers of the pipeline.
pub struct TableWriters {
    writers: BTreeMap<TableId, TableWriter>,
    last_commit: BTreeMap<TableId, Instant>,
    /// Tables stopped by a schema change Delta cannot follow, with the reason.
    stopped: BTreeMap<TableId, String>,
    /// Tables being copied again while the others stream (`super::recopy`):
    /// held from the request until the runner has committed what it read
    /// after the copy's end (see [`TableWriters::held`]).
    recopying: BTreeSet<TableId>,
    metrics: Metrics,
    config: DeltaSinkConfig,
    /// This pipeline and its source: the owner every table it writes records.
    owner: Owner,
}

impl TableWriters {
    /// Opens (or creates) the Delta table of every schema; refuses tables
    /// that belong to another pipeline or source (before writing any).
    pub async fn open(
        config: &DeltaSinkConfig,
        schemas: &[Arc<TableSchema>],
        owner: Owner,
        metrics: Metrics,
    ) -> anyhow::Result<Self> {
        let mut writers = BTreeMap::new();
        for schema in schemas {
            let writer = TableWriter::open_or_create(config, schema.clone(), owner.clone())
                .await
                .with_context(|| format!("open Delta table for {}", schema.id))?;
            writers.insert(schema.id.clone(), writer);
        }
        let now = Instant::now();
        let last_commit = writers.keys().map(|id| (id.clone(), now)).collect();
        let writers = TableWriters {
            writers,
            last_commit,
            stopped: BTreeMap::new(),
            recopying: BTreeSet::new(),
            metrics,
            config: config.clone(),
            owner,
        };
        writers.report_tables();
        Ok(writers)
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Exports every table's Delta version and committed position.
    pub fn report_tables(&self) {
        for (id, writer) in &self.writers {
            self.metrics.table_state(id, writer.delta_version(), writer.committed_position().as_ref());
        }
    }

    /// Exports what one commit of `id` wrote and how long it took.
    pub fn report_commit(&self, id: &TableId, stats: &CommitStats, started: Instant) {
        self.metrics.commit(started.elapsed().as_secs_f64());
        self.metrics.table_written(id, stats.rows_written, stats.bytes_written);
        self.metrics.maintenance().conflicts(id, stats.conflicts);
        if let Some(writer) = self.writers.get(id) {
            self.metrics.table_state(id, writer.delta_version(), writer.committed_position().as_ref());
        }
    }

    /// The source schema each table's Delta table follows (the schema in
    /// force at its committed position): what decoding resumes with.
    pub fn source_schemas(&self) -> Vec<Arc<TableSchema>> {
        self.writers.values().map(TableWriter::source_schema).collect()
    }

    /// For each schema change of `txn`: the table and the names of the
    /// columns it adds to what the table's Delta table follows.
    pub fn added_columns(&self, txn: &Transaction) -> Vec<(Arc<TableSchema>, Vec<String>)> {
        let mut out = Vec::new();
        for change in &txn.schema_changes {
            let schema = &change.table;
            let Some(writer) = self.writers.get(&schema.id) else { continue };
            let current = writer.source_schema();
            let added: Vec<String> = schema
                .columns
                .iter()
                .filter(|c| current.column_index(&c.name).is_none())
                .map(|c| c.name.clone())
                .collect();
            if !added.is_empty() {
                out.push((schema.clone(), added));
            }
        }
        out
    }

    /// The position the source may be told is durable, given that
    /// everything up to `read` was flushed: never past a stopped table's
    /// own position, whose changes are still to be committed. The same for
    /// a table being copied again: its position is the one streamed before
    /// the copy, then the copy's start, from which the stream reads again.
    pub fn confirmable(&self, read: &SourcePosition) -> SourcePosition {
        let mut lowest = read.clone();
        let held = self.writers.iter().filter(|(id, _)| self.held(id)).filter_map(|(_, w)| w.committed_position());
        for pos in held {
            if pos.partial_cmp(&lowest) == Some(std::cmp::Ordering::Less) {
                lowest = pos;
            }
        }
        lowest
    }

    /// From now until [`TableWriters::release_recopy`], `id` is being copied
    /// again: it is [held](TableWriters::held).
    pub fn hold_for_recopy(&mut self, id: &TableId) {
        self.recopying.insert(id.clone());
    }

    /// The copy of `id` is done: its changes flow again.
    pub fn release_recopy(&mut self, id: &TableId) {
        self.recopying.remove(id);
        self.last_commit.insert(id.clone(), Instant::now());
    }

    /// True while a table is stopped or being copied again (also right
    /// after a restart, before the runner continues its copy): its streamed
    /// changes and schema changes are dropped (a copied table reads them
    /// again from the copy's start), it gets no idle commits and no
    /// maintenance, and the source is confirmed no further than its position.
    fn held(&self, id: &TableId) -> bool {
        self.stopped.contains_key(id)
            || self.recopying.contains(id)
            || self.writers.get(id).is_some_and(TableWriter::recopy_in_progress)
    }

    /// The tables a crash left in the middle of a re-copy (they hold a
    /// position and a re-copy's progress): the runner continues them.
    pub fn unfinished_recopies(&self) -> Vec<TableId> {
        self.writers.iter().filter(|(_, w)| w.recopy_in_progress()).map(|(id, _)| id.clone()).collect()
    }

    /// True when `id` is stopped (its changes are not committed; see [`TableWriters::flush`]).
    pub fn is_stopped(&self, id: &TableId) -> bool {
        self.stopped.contains_key(id)
    }

    /// Applies the schema changes of `txn` (before its rows are batched):
    /// each table's Delta table follows its new schema, a new table gets a
    /// Delta table starting at `txn`'s position, and a change Delta cannot
    /// follow stops that table. Rows of the transaction that precede their
    /// table's change are re-shaped to the new schema (by column name).
    ///
    /// `existing` holds, per table, the values older rows show for columns
    /// the change adds (defaults), see [`TableWriter::change_schema`].
    pub async fn apply_schema_changes(
        &mut self,
        mut txn: Transaction,
        existing: &BTreeMap<TableId, Vec<(String, Value)>>,
    ) -> anyhow::Result<Transaction> {
        for change in &txn.schema_changes {
            let schema = &change.table;
            let id = &schema.id;
            let renames = change.renamed.as_slice();
            if self.held(id) {
                continue;
            }
            let Some(writer) = self.writers.get_mut(id) else {
                self.add_table(schema.clone(), &txn.position).await?;
                continue;
            };
            let fills = existing.get(id).map(Vec::as_slice).unwrap_or_default();
            match writer.change_schema(schema, &txn.position, fills, renames).await {
                Ok(changes) => {
                    for change in &changes {
                        tracing::info!(table = %id, %change, position = %txn.position, delta_version = writer.delta_version(), "schema change applied");
                        self.metrics.schema_change(id, change.kind());
                    }
                    self.report_tables();
                }
                Err(e @ DeltaError::SchemaChange { .. }) => {
                    tracing::error!(table = %id, position = %txn.position, error = %e, "table stopped: its changes are not committed until it is re-snapshotted; the other tables keep flowing");
                    self.metrics.error(ErrorKind::schema);
                    self.metrics.table_stopped(id, &e.to_string());
                    self.stopped.insert(id.clone(), e.to_string());
                }
                Err(e) => return Err(anyhow::Error::new(e).context(format!("schema change of {id}"))),
            }
        }
        reshape_rows_before_schema_changes(&mut txn);
        Ok(txn)
    }

    /// Creates the Delta table of a table the source just created; it starts
    /// empty (no snapshot: it had no rows before). It holds no position
    /// until its first commit (rows of the creating transaction may follow
    /// in the same batch); should the process stop before that, the next
    /// start copies it like any new table.
    async fn add_table(&mut self, schema: Arc<TableSchema>, position: &SourcePosition) -> anyhow::Result<()> {
        let id = schema.id.clone();
        let writer = TableWriter::open_or_create(&self.config, schema, self.owner.clone())
            .await
            .with_context(|| format!("create Delta table for new source table {id}"))?;
        tracing::info!(table = %id, %position, "new source table: Delta table created, streaming from its creation");
        self.metrics.schema_change(&id, "create_table");
        self.writers.insert(id.clone(), writer);
        self.last_commit.insert(id, Instant::now());
        self.report_tables();
        Ok(())
    }

    pub fn get_mut(&mut self, id: &TableId) -> Option<&mut TableWriter> {
        self.writers.get_mut(id)
    }

    /// The position to resume streaming from: the lowest committed position of
    /// any table; `None` if some table holds no position yet. (A table in the
    /// middle of a re-copy counts with the position it held before: starting
    /// later would confirm a PostgreSQL slot past the copy's start.)
    pub fn resume_position(&self) -> Option<SourcePosition> {
        let mut lowest: Option<SourcePosition> = None;
        for writer in self.writers.values() {
            let pos = writer.committed_position()?;
            if lowest.as_ref().is_none_or(|l| pos.partial_cmp(l) == Some(std::cmp::Ordering::Less)) {
                lowest = Some(pos);
            }
        }
        lowest
    }

    /// The position `id`'s Delta table holds, if any.
    pub fn committed_position(&self, id: &TableId) -> Option<SourcePosition> {
        self.writers.get(id).and_then(TableWriter::committed_position)
    }

    /// Every table's committed position (tables without one are left out).
    pub fn committed_positions(&self) -> Vec<(TableId, SourcePosition)> {
        self.writers.iter().filter_map(|(id, w)| Some((id.clone(), w.committed_position()?))).collect()
    }

    /// The writers of the tables that are not held, for maintenance between batches.
    pub fn active_mut(&mut self) -> impl Iterator<Item = (&TableId, &mut TableWriter)> {
        let held: BTreeSet<TableId> = self.writers.keys().filter(|id| self.held(id)).cloned().collect();
        self.writers.iter_mut().filter(move |(id, _)| !held.contains(*id))
    }

    /// The pipeline and source identity the tables were opened for.
    pub fn owner(&self) -> &Owner {
        &self.owner
    }

    /// Applies one part of a source transaction too large to hold whole to
    /// each table it changes (files written, nothing committed; see
    /// [`super::assembler`]); the flush holding the transaction's rest
    /// commits every part. A table that holds the transaction already skips it.
    pub async fn apply_part(&mut self, tables: BTreeMap<TableId, TableBatch>) -> anyhow::Result<u64> {
        let mut rows = 0;
        for (id, part) in tables {
            if self.held(&id) {
                continue;
            }
            let Some(writer) = self.writers.get_mut(&id) else { continue };
            rows += writer.apply_part(&part).await.inspect_err(|_| self.metrics.error(ErrorKind::sink)).with_context(
                || format!("write a part of the source transaction at {} to the Delta table of {id}", part.position),
            )?;
        }
        Ok(rows)
    }

    /// True while some table holds uncommitted parts of a source transaction.
    pub fn has_open_parts(&self) -> bool {
        self.writers.values().any(TableWriter::has_open_parts)
    }

    /// Drops every table's uncommitted parts (the transaction is read again
    /// from the source: a reconnect, a shutdown, a rolled-back transaction).
    pub fn abandon_parts(&mut self) {
        for writer in self.writers.values_mut() {
            writer.abandon_parts();
        }
    }

    /// Commits each table's batch, skipping changes the table already holds.
    pub async fn flush(&mut self, batches: BTreeMap<TableId, TableBatch>) -> anyhow::Result<FlushSummary> {
        let mut summary = FlushSummary::default();
        for (id, mut batch) in batches {
            if self.held(&id) {
                summary.changes_skipped += batch.changes.len();
                continue;
            }
            let Some(writer) = self.writers.get_mut(&id) else { continue };
            let committed = writer.committed_version();
            let before = batch.changes.len();
            if let Some(committed) = committed {
                tracing::trace!(table = %id, committed, first = ?batch.changes.first().map(|c| c.position.to_string()), "skip check");
                batch.changes.retain(|c| c.position.to_version().map(|v| v > committed).unwrap_or(true));
                summary.changes_skipped += before - batch.changes.len();
                if batch.changes.is_empty() && !writer.has_open_parts() {
                    continue;
                }
            }
            let started = Instant::now();
            let stats = match writer.apply(&batch).await {
                Ok(stats) => stats,
                Err(e @ (DeltaError::NotOwner { .. } | DeltaError::ForeignChange { .. })) => {
                    // Another writer changed the table in a way this pipeline must not
                    // follow (handed it to another pipeline, another process of this
                    // pipeline, a change Tributary cannot write): stop only this table.
                    tracing::error!(table = %id, error = %e, "table stopped: its changes are not committed; the other tables keep flowing");
                    self.metrics.error(ErrorKind::sink);
                    self.metrics.table_stopped(&id, &e.to_string());
                    self.stopped.insert(id, e.to_string());
                    continue;
                }
                Err(e) => {
                    self.metrics.error(ErrorKind::sink);
                    return Err(anyhow::Error::new(e).context(format!("commit to Delta table of {id}")));
                }
            };
            self.report_commit(&id, &stats, started);
            summary.tables_committed += 1;
            summary.rows_written += stats.rows_written as u64;
            self.last_commit.insert(id, Instant::now());
        }
        Ok(summary)
    }

    /// Gives tables untouched for `idle` a position-only commit at `position`,
    /// so a restart does not have to re-read the binlog from their old position.
    pub async fn advance_idle(&mut self, position: &SourcePosition, idle: Duration) -> anyhow::Result<usize> {
        let version = position.to_version()?;
        let mut advanced = 0;
        let ids: Vec<TableId> = self.writers.keys().cloned().collect();
        for id in ids {
            let held = self.held(&id);
            let writer = self.writers.get_mut(&id).expect("a writer for every id");
            let fresh =
                self.last_commit.get(&id).is_some_and(|t| t.elapsed() < idle) || held || writer.has_open_parts();
            if fresh || writer.committed_version().is_some_and(|v| v >= version) {
                continue;
            }
            let batch = TableBatch { changes: Vec::new(), position: position.clone() };
            let started = Instant::now();
            let stats = writer.apply(&batch).await.inspect_err(|_| self.metrics.error(ErrorKind::sink));
            let stats = stats.with_context(|| format!("position-only commit to {id}"))?;
            self.report_commit(&id, &stats, started);
            self.last_commit.insert(id, Instant::now());
            advanced += 1;
        }
        Ok(advanced)
    }
}

/// Re-shapes the rows of `txn` that precede a schema change of their table
/// (a PostgreSQL transaction that changed rows, then the table) to the
/// table's last schema in the transaction: columns matched by name, NULL for
/// columns the row did not have.
fn reshape_rows_before_schema_changes(txn: &mut Transaction) {
    let mut last: BTreeMap<TableId, (usize, Arc<TableSchema>)> = BTreeMap::new();
    for change in &txn.schema_changes {
        last.insert(change.table.id.clone(), (change.index, change.table.clone()));
    }
    for (position, (old, change)) in txn.changes.iter_mut().enumerate() {
        let Some((index, schema)) = last.get(&old.id) else { continue };
        if position >= *index || old.columns == schema.columns {
            continue;
        }
        let map = |row: &mut Row| {
            let reshaped: Row = schema
                .columns
                .iter()
                .map(|c| old.column_index(&c.name).and_then(|i| row.get(i).cloned()).unwrap_or(Value::Null))
                .collect();
            *row = reshaped;
        };
        match change {
            RowChange::Insert { after } => map(after),
            RowChange::Update { before, after } => {
                map(before);
                map(after);
            }
            RowChange::Delete { before } => map(before),
            RowChange::Truncate => {}
        }
        *old = schema.clone();
    }
}
