//! The initial snapshot: every table that holds no position yet is copied at
//! one consistent source position, chunk by chunk, with a progress bar.

use super::writers::TableWriters;
use crate::metrics::registry::ErrorKind;
use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use std::sync::Arc;
use std::time::Instant;
use tributary_core::{SourcePosition, TableSchema};
use tributary_mysql::snapshot::SnapshotReader;
use tributary_mysql::MySqlSourceConfig;

/// Copies `tables` into their Delta tables at one consistent position; the
/// last commit of each table stores that position, so streaming hands over
/// with no gap and no duplicate. A table left half-copied by a crash is
/// emptied first and copied again.
pub async fn copy_tables(
    source: &MySqlSourceConfig,
    writers: &mut TableWriters,
    tables: Vec<Arc<TableSchema>>,
) -> anyhow::Result<SourcePosition> {
    for table in &tables {
        let writer = writers.get_mut(&table.id).expect("a writer for every table");
        if writer.delta_version() > 0 {
            tracing::warn!(table = %table.id, "an earlier snapshot did not finish; emptying the table and copying again");
            writer.reset().await.with_context(|| format!("empty half-copied table {}", table.id))?;
        }
    }
    let mut reader = SnapshotReader::open(source, tables.clone()).await.context("open the consistent snapshot")?;
    let position = SourcePosition::MySql(reader.position());
    tracing::info!(%position, tables = tables.len(), "snapshot started");
    let commit_ts = now_micros();
    for table in &tables {
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
    reader.finish().await.context("end the snapshot transaction")?;
    Ok(position)
}

fn progress_bar(table: &str, total: u64) -> ProgressBar {
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{msg:30} [{bar:30}] {human_pos}/{human_len} rows {per_sec} eta {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(table.to_string());
    bar
}

/// Now, microseconds since the Unix epoch.
pub fn now_micros() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0)
}
