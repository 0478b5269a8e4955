//! `tributary run`: preflight, snapshot of new tables, then the streaming loop
//! that commits whole transactions in micro-batches until Ctrl-C / SIGTERM.

use super::assembler::TransactionAssembler;
use super::batch::MicroBatch;
use super::writers::TableWriters;
use crate::config::PipelineConfig;
use crate::metrics::registry::{ErrorKind, Op};
use crate::metrics::{Metrics, PipelineState};
use anyhow::{bail, Context};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tributary_core::{ChangeEvent, SourcePosition, TableId, TableSchema};
use tributary_mysql::stream::BinlogSource;
use tributary_mysql::{preflight, schema_loader, MySqlError};

/// Runs the pipeline until `shutdown` turns true; then commits the complete
/// transactions already read and returns.
pub async fn run(
    config: &PipelineConfig,
    mut shutdown: watch::Receiver<bool>,
    metrics: &Metrics,
) -> anyhow::Result<()> {
    let source = config.mysql();
    let report = preflight::preflight(source).await?;
    tracing::info!(?report, "source preflight passed");
    let resolver = schema_loader::LiveSchemaResolver::load(source).await?;
    let mut schemas: Vec<Arc<TableSchema>> = resolver.tables().values().cloned().collect();
    schemas.sort_by(|a, b| a.id.cmp(&b.id));
    let app_id = &config.pipeline.name;
    let mut writers = TableWriters::open(&config.sink.delta, &schemas, app_id, metrics.clone()).await?;

    let fresh: Vec<Arc<TableSchema>> = schemas
        .iter()
        .filter(|s| writers.get_mut(&s.id).is_some_and(|w| w.committed_position().is_none()))
        .cloned()
        .collect();
    if !fresh.is_empty() {
        metrics.set_state(PipelineState::Snapshot);
        start_tables(config, &mut writers, fresh).await?;
        writers.report_tables();
    }
    let from = writers.resume_position().context("every table holds a position after its snapshot")?;
    let SourcePosition::MySql(from) = from else { bail!("the Delta tables hold a non-MySQL position") };
    tracing::info!(position = %SourcePosition::MySql(from.clone()), "streaming from the lowest committed position");

    let binlog = BinlogSource::start(source, resolver, from.clone()).await?;
    let (events_tx, mut events_rx) = mpsc::channel(64);
    let reader = tokio::spawn(read_binlog(binlog, events_tx, metrics.clone()));
    let sampler = crate::metrics::binlog::spawn_sampler(source.clone(), metrics.clone());
    if metrics.state() != PipelineState::Stopping {
        metrics.set_state(PipelineState::Streaming);
    }

    let mut assembler = TransactionAssembler::default();
    let mut batch =
        MicroBatch::new(config.pipeline.batch_max_rows, Duration::from_millis(config.pipeline.batch_max_wait_ms));
    let idle_after = Duration::from_secs(config.pipeline.idle_commit_secs);
    let mut flushed_position: Option<SourcePosition> = None;
    let mut read_position = SourcePosition::MySql(from);
    let mut read_commit_ts = 0i64;
    let mut last_idle_check = Instant::now();
    loop {
        let wake = batch.deadline().unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
        tokio::select! {
            _ = shutdown.changed() => break,
            message = events_rx.recv() => match message {
                Some(Ok(events)) => {
                    for event in events {
                        if let Some(txn) = assembler.push(event)? {
                            read_position = txn.position.clone();
                            read_commit_ts = read_commit_ts.max(txn.commit_ts);
                            batch.push(txn);
                        }
                    }
                }
                Some(Err(e)) => {
                    metrics.error(ErrorKind::source);
                    return Err(e).context("binlog stream");
                }
                None => {
                    metrics.error(ErrorKind::source);
                    bail!("the binlog stream ended unexpectedly");
                }
            },
            _ = tokio::time::sleep_until(wake.into()) => {}
        }
        if batch.is_due() && super::failpoint::sink_stalled() {
            // Test failpoint: keep reading, commit nothing (and do not spin on the past deadline).
            tokio::time::sleep(Duration::from_millis(100)).await;
        } else if batch.is_due() {
            flush(&mut batch, &mut writers).await?;
            metrics.source_applied(read_commit_ts);
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
    reader.abort();
    sampler.abort();
    if !batch.is_empty() {
        flush(&mut batch, &mut writers).await?;
    }
    tracing::info!(position = %read_position, "stopped after committing the last complete transactions");
    Ok(())
}

/// Snapshots new tables, or (snapshot = "never") starts them at the server's current position.
async fn start_tables(
    config: &PipelineConfig,
    writers: &mut TableWriters,
    tables: Vec<Arc<TableSchema>>,
) -> anyhow::Result<()> {
    let source = config.mysql();
    match source.snapshot {
        tributary_mysql::config::SnapshotMode::Initial => {
            super::snapshot::copy_tables(source, writers, tables).await?;
        }
        tributary_mysql::config::SnapshotMode::Never => {
            let position = SourcePosition::MySql(tributary_mysql::stream::current_server_position(source).await?);
            for table in tables {
                let writer = writers.get_mut(&table.id).expect("a writer for every table");
                let batch = tributary_delta::TableBatch { changes: Vec::new(), position: position.clone() };
                writer.apply(&batch).await?;
            }
        }
    }
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

/// Reads the binlog in its own task so a slow commit never drops a half-read event.
async fn read_binlog(
    mut binlog: BinlogSource,
    events: mpsc::Sender<Result<Vec<ChangeEvent>, MySqlError>>,
    metrics: Metrics,
) {
    loop {
        let next = binlog.next().await;
        if let Ok(Some(batch)) = &next {
            count_events(&metrics, batch);
        }
        let stop = !matches!(next, Ok(Some(_)));
        let message = match next {
            Ok(Some(batch)) => Ok(batch),
            Ok(None) => return,
            Err(e) => Err(e),
        };
        if events.send(message).await.is_err() || stop {
            return;
        }
    }
}

/// Counts row events per table and operation, and tells the lag gauge what was
/// read; runs of one table and operation are counted once (this is the hot path).
fn count_events(metrics: &Metrics, events: &[ChangeEvent]) {
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
