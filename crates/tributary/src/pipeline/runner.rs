//! `tributary run`: the source starts (preflight, snapshot of new tables,
//! reader task), then the streaming loop commits whole transactions in
//! micro-batches until Ctrl-C / SIGTERM, and confirms to the source only
//! what is durable in Delta.

use super::assembler::TransactionAssembler;
use super::batch::MicroBatch;
use super::source_control::SourceControl;
use super::writers::TableWriters;
use crate::config::{PipelineConfig, SourceConfig};
use crate::metrics::registry::{ErrorKind, Op};
use crate::metrics::{Metrics, PipelineState};
use anyhow::bail;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tributary_core::{ChangeEvent, SourcePosition, TableId};

/// What a source reader task sends: events in source order, or why it stopped.
pub type EventMessage = anyhow::Result<Vec<ChangeEvent>>;

/// A started source: the Delta writers (every table holds a position), the
/// events read from `from` on, and the tasks to stop at the end.
pub struct Started {
    pub writers: TableWriters,
    pub events: mpsc::Receiver<EventMessage>,
    pub tasks: Vec<JoinHandle<()>>,
    pub from: SourcePosition,
    /// Where durable progress is confirmed and how the reader stops.
    pub control: Box<dyn SourceControl>,
}

/// Runs the pipeline until `shutdown` turns true; then commits the complete
/// transactions already read and returns.
pub async fn run(
    config: &PipelineConfig,
    mut shutdown: watch::Receiver<bool>,
    metrics: &Metrics,
) -> anyhow::Result<()> {
    let started = match &config.source {
        SourceConfig::Mysql(_) => super::mysql_source::start(config, metrics).await?,
        SourceConfig::Postgres(_) => super::postgres_source::start(config, metrics).await?,
    };
    let Started { mut writers, events: mut events_rx, tasks, from, control } = started;
    if metrics.state() != PipelineState::Stopping {
        metrics.set_state(PipelineState::Streaming);
    }

    let mut assembler = TransactionAssembler::default();
    let mut batch =
        MicroBatch::new(config.pipeline.batch_max_rows, Duration::from_millis(config.pipeline.batch_max_wait_ms));
    let idle_after = Duration::from_secs(config.pipeline.idle_commit_secs);
    let mut flushed_position: Option<SourcePosition> = None;
    let mut read_position = from;
    let mut read_commit_ts = 0i64;
    let mut last_idle_check = Instant::now();
    loop {
        let wake = batch.deadline().unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
        tokio::select! {
            _ = shutdown.changed() => break,
            message = events_rx.recv() => match message {
                Some(Ok(events)) => {
                    for event in events {
                        if let ChangeEvent::Heartbeat { position, commit_ts } = &event {
                            // Everything before it has been read; once that is all in
                            // Delta, the source may forget it and the lag is zero.
                            metrics.source_read(*commit_ts);
                            if !assembler.in_transaction() && batch.is_empty() {
                                metrics.source_applied(*commit_ts);
                                control.confirm(&writers.confirmable(position));
                            }
                            continue;
                        }
                        if let Some(mut txn) = assembler.push(event)? {
                            if !txn.schema_changes.is_empty() {
                                // A schema change lands in order: what came before it first.
                                if !batch.is_empty() {
                                    let read = (&read_position, read_commit_ts);
                                    commit(&mut batch, &mut writers, metrics, control.as_ref(), read).await?;
                                    flushed_position = Some(read_position.clone());
                                }
                                let existing = existing_row_values(config, &writers, &txn).await?;
                                txn = writers.apply_schema_changes(txn, &existing).await?;
                            }
                            read_position = txn.position.clone();
                            read_commit_ts = read_commit_ts.max(txn.commit_ts);
                            batch.push(txn);
                        }
                    }
                }
                Some(Err(e)) => {
                    metrics.health().set_fatal(format!("the source reader failed: {e:#}"));
                    return Err(e);
                }
                None => {
                    metrics.error(ErrorKind::source);
                    metrics.health().set_fatal("the source stream ended unexpectedly");
                    bail!("the source stream ended unexpectedly");
                }
            },
            _ = tokio::time::sleep_until(wake.into()) => {}
        }
        if batch.is_due() && super::failpoint::sink_stalled() {
            // Test failpoint: keep reading, commit nothing (and do not spin on the past deadline).
            metrics.health().commit_waiting();
            tokio::time::sleep(Duration::from_millis(100)).await;
        } else if batch.is_due() {
            commit(&mut batch, &mut writers, metrics, control.as_ref(), (&read_position, read_commit_ts)).await?;
            flushed_position = Some(read_position.clone());
        }
        if last_idle_check.elapsed() >= idle_after.min(Duration::from_secs(60)) {
            last_idle_check = Instant::now();
            if let Some(position) = &flushed_position {
                writers.advance_idle(position, idle_after).await?;
            }
        }
    }
    metrics.set_state(PipelineState::Stopping);
    if !batch.is_empty() {
        commit(&mut batch, &mut writers, metrics, control.as_ref(), (&read_position, read_commit_ts)).await?;
    }
    if let Some(reader) = control.stop() {
        if tokio::time::timeout(Duration::from_secs(5), reader).await.is_err() {
            tracing::warn!("the source reader did not stop within 5 s");
        }
    }
    for task in tasks {
        task.abort();
    }
    tracing::info!(position = %read_position, "stopped after committing the last complete transactions");
    Ok(())
}

/// Commits the batch, then reports it: the lag gauge learns what is applied
/// and the source is told what is durable (`read`: the position and commit
/// time of the batch's last transaction).
async fn commit(
    batch: &mut MicroBatch,
    writers: &mut TableWriters,
    metrics: &Metrics,
    control: &dyn SourceControl,
    read: (&SourcePosition, i64),
) -> anyhow::Result<()> {
    metrics.health().commit_waiting();
    if let Err(e) = flush(batch, writers).await {
        metrics.health().commit_failed(&format!("{e:#}"));
        return Err(e);
    }
    metrics.health().commit_succeeded();
    metrics.source_applied(read.1);
    control.confirm(&writers.confirmable(read.0));
    Ok(())
}

async fn flush(batch: &mut MicroBatch, writers: &mut TableWriters) -> anyhow::Result<()> {
    let rows = batch.rows();
    let started = Instant::now();
    let summary = writers.flush(batch.split_per_table()).await?;
    tracing::debug!(
        rows,
        tables = summary.tables_committed,
        skipped = summary.changes_skipped,
        ms = started.elapsed().as_millis() as u64,
        "batch committed"
    );
    Ok(())
}

/// For columns the schema changes of `txn` add: the values the source shows
/// for rows that existed before them (constant defaults; see each source's
/// `schema_loader::existing_row_values`).
async fn existing_row_values(
    config: &PipelineConfig,
    writers: &TableWriters,
    txn: &tributary_core::Transaction,
) -> anyhow::Result<std::collections::BTreeMap<TableId, Vec<(String, tributary_core::Value)>>> {
    let mut out = std::collections::BTreeMap::new();
    let added = writers.added_columns(txn);
    if added.is_empty() {
        return Ok(out);
    }
    match &config.source {
        SourceConfig::Postgres(source) => {
            let client = tributary_postgres::connect::connect(source).await?;
            for (schema, names) in added {
                let values = tributary_postgres::schema_loader::existing_row_values(&client, &schema, &names).await?;
                out.insert(schema.id.clone(), values);
            }
        }
        SourceConfig::Mysql(source) => {
            for (schema, names) in added {
                let values = tributary_mysql::schema_loader::existing_row_values(source, &schema, &names).await?;
                out.insert(schema.id.clone(), values);
            }
        }
    }
    Ok(out)
}

/// Counts row events per table and operation, and tells the lag gauge what was
/// read; runs of one table and operation are counted once (this is the hot path).
pub fn count_events(metrics: &Metrics, events: &[ChangeEvent]) {
    let mut run: Option<(&TableId, Op, u64)> = None;
    let (mut first_ts, mut last_ts) = (0i64, 0i64);
    for event in events {
        let (table, op, commit_ts) = match event {
            ChangeEvent::Insert { table, commit_ts, .. } => (&table.id, Op::insert, *commit_ts),
            ChangeEvent::Update { table, commit_ts, .. } => (&table.id, Op::update, *commit_ts),
            ChangeEvent::Delete { table, commit_ts, .. } => (&table.id, Op::delete, *commit_ts),
            ChangeEvent::Truncate { table, commit_ts, .. } => (&table.id, Op::truncate, *commit_ts),
            _ => continue,
        };
        if first_ts == 0 {
            first_ts = commit_ts;
        }
        last_ts = last_ts.max(commit_ts);
        match &mut run {
            Some((t, o, n)) if *t == table && *o == op => *n += 1,
            _ => {
                if let Some((t, o, n)) = run.take() {
                    metrics.events(t, o, n);
                }
                run = Some((table, op, 1));
            }
        }
    }
    if let Some((t, o, n)) = run {
        metrics.events(t, o, n);
    }
    if first_ts != 0 {
        metrics.source_read(first_ts);
        metrics.source_read(last_ts);
    }
}
