//! The Delta table writers of a pipeline, one per source table, and the
//! exactly-once rule: a change at or below a table's committed position is
//! skipped for that table.

use crate::metrics::registry::ErrorKind;
use crate::metrics::Metrics;
use anyhow::Context;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tributary_core::{SourcePosition, TableId, TableSchema};
use tributary_delta::{CommitStats, DeltaSinkConfig, TableBatch, TableWriter};

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
    metrics: Metrics,
}

impl TableWriters {
    /// Opens (or creates) the Delta table of every schema.
    pub async fn open(
        config: &DeltaSinkConfig,
        schemas: &[Arc<TableSchema>],
        app_id: &str,
        metrics: Metrics,
    ) -> anyhow::Result<Self> {
        let mut writers = BTreeMap::new();
        for schema in schemas {
            let writer = TableWriter::open_or_create(config, schema.clone(), app_id)
                .await
                .with_context(|| format!("open Delta table for {}", schema.id))?;
            writers.insert(schema.id.clone(), writer);
        }
        let now = Instant::now();
        let last_commit = writers.keys().map(|id| (id.clone(), now)).collect();
        let writers = TableWriters { writers, last_commit, metrics };
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
        if let Some(writer) = self.writers.get(id) {
            self.metrics.table_state(id, writer.delta_version(), writer.committed_position().as_ref());
        }
    }

    pub fn get_mut(&mut self, id: &TableId) -> Option<&mut TableWriter> {
        self.writers.get_mut(id)
    }

    /// The position to resume streaming from: the lowest committed position of
    /// any table; `None` if some table holds no position yet.
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

    /// Commits each table's batch, skipping changes the table already holds.
    pub async fn flush(&mut self, batches: BTreeMap<TableId, TableBatch>) -> anyhow::Result<FlushSummary> {
        let mut summary = FlushSummary::default();
        for (id, mut batch) in batches {
            let Some(writer) = self.writers.get_mut(&id) else { continue };
            let committed = writer.committed_version();
            let before = batch.changes.len();
            if let Some(committed) = committed {
                tracing::trace!(table = %id, committed, first = ?batch.changes.first().map(|c| c.position.to_string()), "skip check");
                batch.changes.retain(|c| c.position.to_version().map(|v| v > committed).unwrap_or(true));
                summary.changes_skipped += before - batch.changes.len();
                if batch.changes.is_empty() {
                    continue;
                }
            }
            let started = Instant::now();
            let stats = writer.apply(&batch).await.inspect_err(|_| self.metrics.error(ErrorKind::sink));
            let stats = stats.with_context(|| format!("commit to Delta table of {id}"))?;
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
            let writer = self.writers.get_mut(&id).expect("a writer for every id");
            let fresh = self.last_commit.get(&id).is_some_and(|t| t.elapsed() < idle);
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
