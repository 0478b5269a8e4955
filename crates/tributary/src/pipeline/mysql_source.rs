//! Starting a MySQL / MariaDB pipeline: preflight, schemas, tables carried
//! over to a promoted replica ([`super::failover`]), Delta writers, the
//! snapshot of new tables, then the binlog reader task; after a lost
//! connection, the same reader again from what the Delta tables hold.

use super::chunked_snapshot::{self, ChunkedCopy};
use super::runner::{EventMessage, SourceStream, Started};
use super::snapshot;
use super::writers::TableWriters;
use crate::config::PipelineConfig;
use crate::metrics::registry::ErrorKind;
use crate::metrics::{Metrics, PipelineState};
use anyhow::{bail, Context};
use std::sync::Arc;
use tokio::sync::mpsc;
use tributary_core::{SourcePosition, TableSchema};
use tributary_mysql::config::SnapshotMode;
use tributary_mysql::snapshot::{chunks, SnapshotReader};
use tributary_mysql::stream::BinlogSource;
use tributary_mysql::{preflight, schema_loader, MySqlSourceConfig};

/// Prepares the tables and starts reading the binlog from the lowest committed position.
pub async fn start(config: &PipelineConfig, metrics: &Metrics) -> anyhow::Result<Started> {
    let source = config.mysql("run")?;
    let report = preflight::preflight(source).await?;
    tracing::info!(?report, "source preflight passed");
    let mut schemas: Vec<Arc<TableSchema>> = schema_loader::load_schema_map(source).await?.into_values().collect();
    schemas.sort_by(|a, b| a.id.cmp(&b.id));
    let owner = super::source_control::owner(config).await?;
    let ids: Vec<_> = schemas.iter().map(|s| s.id.clone()).collect();
    let followed = super::failover::follow(config, &owner, &ids).await?;
    if followed > 0 {
        tracing::info!(tables = followed, source = ?owner.source, "failover: tables continue on the new server");
    }
    let mut writers = TableWriters::open(&config.sink.delta, &schemas, owner, metrics.clone()).await?;

    let fresh: Vec<Arc<TableSchema>> = schemas
        .iter()
        .filter(|s| writers.get_mut(&s.id).is_some_and(|w| w.committed_position().is_none()))
        .cloned()
        .collect();
    if !fresh.is_empty() {
        metrics.set_state(PipelineState::Snapshot);
        start_tables(source, &mut writers, &fresh).await?;
        writers.report_tables();
    }
    // A transient failure to open the binlog stream after a long copy is
    // reconnected by the runner; the copy is durable.
    let stream = stream(config, &writers, metrics).await;
    Ok(Started { writers, stream })
}

/// Reconnects after a lost connection: the server's CDC settings and grants
/// are checked again, then streaming resumes from what the Delta tables hold.
pub async fn reconnect(
    config: &PipelineConfig,
    writers: &TableWriters,
    metrics: &Metrics,
) -> anyhow::Result<SourceStream> {
    let source = config.mysql("run")?;
    preflight::check_server_for_reconnect(source).await?;
    stream(config, writers, metrics).await
}

/// Starts the binlog reader at the lowest committed position, once the
/// server's binlog is known to reach every table's position.
async fn stream(config: &PipelineConfig, writers: &TableWriters, metrics: &Metrics) -> anyhow::Result<SourceStream> {
    let source = config.mysql("run")?;
    let from = writers.resume_position().context("every table holds a position after its snapshot")?;
    let SourcePosition::MySql(from) = from else { bail!("the Delta tables hold a non-MySQL position") };
    let server_end = tributary_mysql::stream::current_server_position(source).await?;
    // A position read back from a txn version alone names its file by index only.
    let from = from.named_like(&server_end.file);
    let server_end = SourcePosition::MySql(server_end);
    super::source_check::refuse_behind(&writers.committed_positions(), &server_end)?;
    tracing::info!(position = %SourcePosition::MySql(from.clone()), "streaming from the lowest committed position");

    // Decoding resumes with the schema each Delta table holds at its committed
    // position, not the catalog's (which may be ahead after DDL while stopped).
    let resume: Vec<(Arc<TableSchema>, Option<SourcePosition>)> = writers
        .source_schemas()
        .into_iter()
        .map(|schema| {
            let committed = writers.committed_position(&schema.id);
            (schema, committed)
        })
        .collect();
    let resolver = schema_loader::LiveSchemaResolver::resume(resume, source.table_filter()?);
    let binlog = BinlogSource::start(source, resolver, from.clone()).await?;
    let (events_tx, events_rx) = mpsc::channel(64);
    let reader = tokio::spawn(read_binlog(binlog, events_tx, metrics.clone()));
    let sampler = crate::metrics::binlog::spawn_sampler(source.clone(), metrics.clone());
    Ok(SourceStream {
        events: events_rx,
        tasks: vec![reader, sampler],
        from: SourcePosition::MySql(from),
        control: Box::new(super::source_control::Stateless),
    })
}

/// Snapshots new tables, or (snapshot = "never") starts them at the server's current position.
async fn start_tables(
    source: &MySqlSourceConfig,
    writers: &mut TableWriters,
    tables: &[Arc<TableSchema>],
) -> anyhow::Result<()> {
    match source.snapshot {
        SnapshotMode::Initial => {
            let (chunked, whole) = snapshot::by_method(source.snapshot_method, tables);
            // A copy continues only in chunks; anything else half-copied starts over.
            let mut restart = snapshot::without_progress(writers, &chunked);
            restart.extend(whole.iter().cloned());
            snapshot::reset_half_copied(writers, &restart).await?;
            if !whole.is_empty() {
                let mut reader =
                    SnapshotReader::open(source, whole.clone()).await.context("open the consistent snapshot")?;
                // `open` (unlike `open_fresh`) always records the position.
                let position = reader.position().context("the snapshot transaction has no binlog position")?;
                let position = SourcePosition::MySql(position);
                snapshot::copy_tables(&mut reader, position, writers, &whole).await?;
                reader.finish().await.context("end the snapshot transaction")?;
            }
            if !chunked.is_empty() {
                let start = if snapshot::without_progress(writers, &chunked).is_empty() {
                    None
                } else {
                    Some(SourcePosition::MySql(chunks::copy_start_position(source).await?))
                };
                let mut readers = Vec::with_capacity(source.snapshot_parallelism);
                for _ in 0..source.snapshot_parallelism {
                    readers.push(chunks::ChunkReader::connect(source).await.context("connect a snapshot reader")?);
                }
                let catch_up = move || async move {
                    Ok(SourcePosition::MySql(tributary_mysql::stream::current_server_position(source).await?))
                };
                let copy = ChunkedCopy {
                    start,
                    parallelism: source.snapshot_parallelism,
                    chunk_rows: source.snapshot_chunk_rows,
                    recopy: false,
                };
                chunked_snapshot::copy_chunked(readers, catch_up, copy, writers, &chunked).await?;
            }
        }
        SnapshotMode::Never => {
            let position = SourcePosition::MySql(tributary_mysql::stream::start_position(source).await?);
            snapshot::start_empty(writers, tables, &position).await?;
        }
    }
    Ok(())
}

/// Reads the binlog in its own task so a slow commit never drops a half-read event.
async fn read_binlog(mut binlog: BinlogSource, events: mpsc::Sender<EventMessage>, metrics: Metrics) {
    loop {
        let next = binlog.next().await;
        if let Ok(Some(batch)) = &next {
            super::runner::count_events(&metrics, batch);
        }
        let message = match next {
            Ok(Some(batch)) => Ok(batch),
            // The server closed the stream (e.g. it is shutting down).
            Ok(None) => Err(anyhow::Error::new(super::reconnect::StreamEnded)),
            Err(e) => {
                metrics.error(ErrorKind::source);
                Err(anyhow::Error::new(e).context("binlog stream"))
            }
        };
        let stop = message.is_err();
        if events.send(message).await.is_err() || stop {
            return;
        }
    }
}
