//! The initial snapshot: every table that holds no position yet is copied at
//! one consistent source position, chunk by chunk, with a progress bar. The
//! sources provide the reading ([`SnapshotSource`]); this module the writing.

use super::writers::TableWriters;
use crate::metrics::registry::ErrorKind;
use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;
use tributary_core::{Row, SourcePosition, TableSchema};

/// Reads tables as of one consistent source position.
pub trait SnapshotSource {
    /// A row estimate for the progress bar.
    fn estimate_rows(&mut self, table: &TableSchema) -> impl Future<Output = anyhow::Result<u64>> + Send;
    /// The next chunk of `table` in key order; `None` at the end.
    fn next_chunk(&mut self, table: &TableSchema) -> impl Future<Output = anyhow::Result<Option<Vec<Row>>>> + Send;
}

impl SnapshotSource for tributary_mysql::snapshot::SnapshotReader {
    async fn estimate_rows(&mut self, table: &TableSchema) -> anyhow::Result<u64> {
        Ok(tributary_mysql::snapshot::SnapshotReader::estimate_rows(self, table).await?)
    }
    async fn next_chunk(&mut self, table: &TableSchema) -> anyhow::Result<Option<Vec<Row>>> {
        Ok(tributary_mysql::snapshot::SnapshotReader::next_chunk(self, table).await?)
    }
}

impl SnapshotSource for tributary_postgres::snapshot::SnapshotReader {
    async fn estimate_rows(&mut self, table: &TableSchema) -> anyhow::Result<u64> {
        Ok(tributary_postgres::snapshot::SnapshotReader::estimate_rows(self, table).await?)
    }
    async fn next_chunk(&mut self, table: &TableSchema) -> anyhow::Result<Option<Vec<Row>>> {
        Ok(tributary_postgres::snapshot::SnapshotReader::next_chunk(self, table).await?)
    }
}

/// Splits `tables` into those copied in chunks (with a primary key, when the
/// method is chunked) and those read in one transaction.
pub fn by_method(
    method: tributary_core::SnapshotMethod,
    tables: &[Arc<TableSchema>],
) -> (Vec<Arc<TableSchema>>, Vec<Arc<TableSchema>>) {
    tables.iter().cloned().partition(|t| method == tributary_core::SnapshotMethod::Chunked && t.has_primary_key())
}

/// The tables of `tables` (their schemas as the catalog shows them now)
/// that hold no chunked copy which can continue: none recorded, or one
/// whose rows no longer fit the table because a column's type changed since
/// it started (that copy starts over, with a warning).
pub fn without_progress(writers: &mut TableWriters, tables: &[Arc<TableSchema>]) -> Vec<Arc<TableSchema>> {
    let mut out = Vec::new();
    for table in tables {
        let writer = writers.get_mut(&table.id).expect("a writer for every table");
        if writer.snapshot_progress().is_none() {
            out.push(table.clone());
        } else if !writer.copy_can_continue_with(table) {
            tracing::warn!(table = %table.id, "a column's type changed at the source since this table's copy started, \
                so its copied rows no longer match what the copy reads: the copy starts over from the first row");
            out.push(table.clone());
        }
    }
    out
}

/// Empties the tables an earlier, unfinished snapshot left half-copied, and
/// makes each of `tables` follow its schema (the catalog's, which the copy
/// reads with) before its copy starts from the first row.
pub async fn reset_half_copied(writers: &mut TableWriters, tables: &[Arc<TableSchema>]) -> anyhow::Result<()> {
    for table in tables {
        let writer = writers.get_mut(&table.id).expect("a writer for every table");
        if writer.delta_version() > 0 {
            tracing::warn!(table = %table.id, "the table holds rows without a streaming position; emptying it and copying again");
            writer.reset().await.with_context(|| format!("empty half-copied table {}", table.id))?;
        }
        writer.follow_for_copy(table).await?;
    }
    Ok(())
}

/// Starts `tables` empty at `position` (snapshot = "never"): a position-only
/// commit each, from which streaming continues.
pub async fn start_empty(
    writers: &mut TableWriters,
    tables: &[Arc<TableSchema>],
    position: &SourcePosition,
) -> anyhow::Result<()> {
    for table in tables {
        let writer = writers.get_mut(&table.id).expect("a writer for every table");
        writer.apply(&tributary_delta::TableBatch { changes: Vec::new(), position: position.clone() }).await?;
    }
    Ok(())
}

/// Copies `tables` from `reader`, which reads as of `position`, into their
/// Delta tables; the last commit of each table stores that position, so
/// streaming hands over with no gap and no duplicate. Call
/// [`reset_half_copied`] first.
pub async fn copy_tables(
    reader: &mut impl SnapshotSource,
    position: SourcePosition,
    writers: &mut TableWriters,
    tables: &[Arc<TableSchema>],
) -> anyhow::Result<()> {
    tracing::info!(%position, tables = tables.len(), "snapshot started");
    // Snapshot rows have no source commit of their own: their `_tributary_commit_ts`
    // is when the copy started, by this host's clock (docs/types.md, "Metadata columns").
    let commit_ts = now_micros();
    for table in tables {
        let total = reader.estimate_rows(table).await?;
        let metrics = writers.metrics().clone();
        metrics.snapshot_started(&table.id, total);
        let bar = progress_bar(&table.id.to_string(), total);
        let started = Instant::now();
        let mut rows_done = 0u64;
        loop {
            let chunk = reader.next_chunk(table).await.inspect_err(|_| metrics.error(ErrorKind::snapshot));
            let rows = chunk.with_context(|| format!("snapshot of {}", table.id))?;
            let last = rows.is_none();
            let rows = rows.unwrap_or_default();
            let count = rows.len() as u64;
            let commit_started = Instant::now();
            let writer = writers.get_mut(&table.id).expect("a writer for every table");
            let stats = writer.append_snapshot_chunk(rows, &position, commit_ts, last).await;
            let stats = stats.inspect_err(|_| metrics.error(ErrorKind::sink))?;
            writers.report_commit(&table.id, &stats, commit_started);
            rows_done += count;
            metrics.snapshot_rows(&table.id, count);
            bar.set_position(rows_done);
            if last {
                break;
            }
        }
        bar.finish_and_clear();
        let secs = started.elapsed().as_secs_f64();
        tracing::info!(
            table = %table.id,
            rows = rows_done,
            seconds = format!("{secs:.1}"),
            rows_per_sec = (rows_done as f64 / secs.max(1e-9)) as u64,
            "snapshot of table done"
        );
    }
    Ok(())
}

fn progress_bar(table: &str, total: u64) -> ProgressBar {
    let bar = ProgressBar::new(total);
    bar.set_style(progress_style());
    bar.set_message(table.to_string());
    bar
}

/// Rows copied of how many, rows/s and time left.
pub fn progress_style() -> ProgressStyle {
    ProgressStyle::with_template("{msg:30} [{bar:30}] {human_pos}/{human_len} rows {per_sec} eta {eta}")
        .expect("valid template")
        .progress_chars("=> ")
}

/// Now, microseconds since the Unix epoch.
pub fn now_micros() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0)
}
