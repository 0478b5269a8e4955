//! Starting a PostgreSQL pipeline: preflight, publication, replication slot
//! (created with an exported snapshot), Delta writers, the snapshot of new
//! tables, then the pgoutput reader task and the heartbeat writer.
//!
//! A failed first start drops the slot it created, so nothing is left
//! behind, unless chunks of a chunked copy are committed: they continue at
//! the next start, which needs that slot. After a lost connection the same
//! slot is opened again and streaming resumes from what the Delta tables
//! hold. A slot that is gone while the Delta tables hold positions means
//! the WAL in between may be lost: every table is copied again.

use super::chunked_snapshot::{self, ChunkedCopy};
use super::runner::{count_events, EventMessage, SourceStream, Started};
use super::snapshot;
use super::source_control::SourceControl;
use super::writers::TableWriters;
use crate::config::PipelineConfig;
use crate::metrics::registry::ErrorKind;
use crate::metrics::{Metrics, PipelineState};
use anyhow::{bail, Context};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tributary_core::{SourcePosition, TableId, TableSchema};
use tributary_postgres::config::PublicationScope;
use tributary_postgres::config::SnapshotMode;
use tributary_postgres::preflight::preflight;
use tributary_postgres::publication::{drop_from_publication, ensure_publication, listed_tables};
use tributary_postgres::snapshot::chunks::ChunkReader;
use tributary_postgres::snapshot::SnapshotReader;
use tributary_postgres::stream::{current_wal_lsn, drop_slot, slot_exists, write_heartbeat};
use tributary_postgres::stream::{Acknowledger, StopHandle};
use tributary_postgres::stream::{ReplicationStream, SlotSession, WalStream};
use tributary_postgres::PostgresSourceConfig;

/// Prepares the tables and starts streaming from the lowest committed LSN.
pub async fn start(config: &PipelineConfig, metrics: &Metrics) -> anyhow::Result<Started> {
    let crate::config::SourceConfig::Postgres(source) = &config.source else { bail!("not a PostgreSQL source") };
    let checked = preflight(source).await?;
    tracing::info!(report = ?checked.report, "source preflight passed");
    let client = checked.client;
    let schemas: Vec<Arc<TableSchema>> = checked.tables.iter().map(|t| t.schema.clone()).collect();
    let ids: Vec<_> = schemas.iter().map(|s| s.id.clone()).collect();
    let published_schemas = (source.publish == PublicationScope::Schemas).then(|| source.published_schemas());
    // Before the publication is completed: which tables it did not list.
    let listed = match source.publish {
        PublicationScope::Tables => listed_tables(&client, &source.publication).await?,
        PublicationScope::Schemas => None,
    };
    ensure_publication(&client, &source.publication, &ids, published_schemas.as_deref()).await?;
    let mut writers =
        TableWriters::open(&config.sink.delta, &schemas, super::source_control::owner(config).await?, metrics.clone())
            .await?;
    if let Some(listed) = &listed {
        let dormant = dormant_tables(config, &ids).await;
        let leave: Vec<_> = dormant.into_iter().filter(|id| listed.contains(id)).collect();
        drop_from_publication(&client, &source.publication, &leave).await;
    }
    // A table that holds a position but was not in the publication: its
    // changes since it left were not streamed (it was dropped from the
    // include list, or from the publication by hand). It is copied again.
    let unstreamed: Vec<TableId> = match &listed {
        Some(listed) => {
            ids.iter().filter(|id| !listed.contains(id) && writers.committed_position(id).is_some()).cloned().collect()
        }
        None => Vec::new(),
    };
    if !unstreamed.is_empty() {
        let names: Vec<String> = unstreamed.iter().map(ToString::to_string).collect();
        tracing::warn!(publication = %source.publication, tables = ?names, "these tables hold positions but were not in the publication, so their changes since then were not streamed: copying them again");
    }
    for schema in &schemas {
        let position = writers.get_mut(&schema.id).and_then(|w| w.committed_position());
        if let Some(other @ SourcePosition::MySql(_)) = position {
            bail!("Delta table of {} holds a MySQL position ({other}); it belongs to another pipeline", schema.id);
        }
    }

    let session = SlotSession::open(source, &client, &source.slot, false).await?;
    let created = session.exported().cloned();
    let fresh: Vec<Arc<TableSchema>> = match &created {
        // A new slot: everything it has not seen must come from its snapshot.
        Some(_) => {
            let holding: Vec<String> = schemas
                .iter()
                .filter(|s| writers.get_mut(&s.id).is_some_and(|w| w.committed_position().is_some()))
                .map(|s| s.id.to_string())
                .collect();
            if !holding.is_empty() {
                tracing::warn!(slot = %source.slot, tables = ?holding, "the replication slot was missing while Delta tables hold positions: changes in between may be lost, so every table is copied again");
            }
            schemas.clone()
        }
        None => schemas
            .iter()
            .filter(|s| writers.committed_position(&s.id).is_none() || unstreamed.contains(&s.id))
            .cloned()
            .collect(),
    };
    let session = if fresh.is_empty() {
        session
    } else {
        metrics.set_state(PipelineState::Snapshot);
        let result = start_tables(source, &client, &mut writers, &fresh, session, created.is_some()).await;
        match result {
            Ok(session) => session,
            Err(e) => {
                // Committed chunks of a chunked copy continue at the next start, on
                // this slot only (it holds the changes since the copy's start).
                let copied =
                    fresh.iter().any(|s| writers.get_mut(&s.id).is_some_and(|w| w.snapshot_progress().is_some()));
                if created.is_some() && copied {
                    tracing::warn!(slot = %source.slot, "the replication slot is kept: the next start continues the \
                        copy from its last committed chunk with it (if this pipeline is abandoned instead, drop it: \
                        SELECT pg_drop_replication_slot('<slot>'), or the server keeps WAL for it)");
                } else if created.is_some() {
                    // Nothing is durable yet that needs this slot: leave nothing behind.
                    if let Err(drop_error) = drop_slot(&client, &source.slot).await {
                        tracing::warn!(error = %drop_error, "could not drop the slot of the failed start");
                    }
                }
                return Err(e);
            }
        }
    };
    writers.report_tables();
    super::failpoint::hold_start().await;
    // The replication session waited idle through the copy, where the server
    // may have ended it (a role's idle_in_transaction_session_timeout, which
    // that session cannot turn off for itself) or a network cut may: a
    // transient failure here is reconnected by the runner like any lost
    // connection, the slot and the copy being durable by now.
    let stream = stream(source, session, client, &writers, metrics).await;
    Ok(Started { writers, stream })
}

/// Tables this pipeline wrote (its app id holds a position) under its lake
/// root that `included` no longer names.
async fn dormant_tables(config: &PipelineConfig, included: &[TableId]) -> Vec<TableId> {
    let root = config.sink.delta.tables_root();
    let mut dormant = Vec::new();
    for path in tributary_delta::list_tables(&root) {
        let Ok(relative) = path.strip_prefix(&root) else { continue };
        let parts: Vec<String> = relative.iter().map(|p| p.to_string_lossy().into_owned()).collect();
        let [schema, name] = parts.as_slice() else { continue };
        let id = TableId::new(schema.clone(), name.clone());
        if included.contains(&id) {
            continue;
        }
        let ours = tributary_delta::table_status(&path, &config.pipeline.name).await;
        if ours.is_ok_and(|status| status.committed_version.is_some()) {
            dormant.push(id);
        }
    }
    dormant
}

/// Reconnects after a lost connection: the slot must still exist (a missing
/// slot means WAL may be gone, which needs a person), then streaming resumes
/// from what the Delta tables hold.
pub async fn reconnect(
    config: &PipelineConfig,
    writers: &TableWriters,
    metrics: &Metrics,
) -> anyhow::Result<SourceStream> {
    let crate::config::SourceConfig::Postgres(source) = &config.source else { bail!("not a PostgreSQL source") };
    let client = tributary_postgres::connect::connect(source).await?;
    let slot_gone = || {
        tributary_postgres::PostgresError::Slot {
        slot: source.slot.clone(),
        problem: "it disappeared while the pipeline was disconnected (dropped, or invalidated by max_slot_wal_keep_size): changes may be lost; restart tributary to copy every table again".into(),
    }
    };
    if !slot_exists(&client, &source.slot).await? {
        return Err(slot_gone().into());
    }
    let session = SlotSession::open(source, &client, &source.slot, false).await?;
    if session.exported().is_some() {
        // Dropped between the check and the open: the new slot has seen nothing.
        drop(session);
        if let Err(e) = drop_slot(&client, &source.slot).await {
            tracing::warn!(error = %e, "could not drop the slot created by a reconnect");
        }
        return Err(slot_gone().into());
    }
    stream(source, session, client, writers, metrics).await
}

/// Starts the pgoutput reader at the lowest committed LSN, once the
/// server's WAL is known to reach every table's position, and the
/// heartbeat writer and slot sampler beside it.
async fn stream(
    source: &PostgresSourceConfig,
    session: SlotSession,
    client: tributary_postgres::SqlClient,
    writers: &TableWriters,
    metrics: &Metrics,
) -> anyhow::Result<SourceStream> {
    let from = writers.resume_position().context("every table holds a position after its snapshot")?;
    let SourcePosition::Postgres { lsn: from_lsn } = from else {
        bail!("the Delta tables hold a non-PostgreSQL position")
    };
    let server_end = SourcePosition::Postgres { lsn: current_wal_lsn(&client).await? };
    super::source_check::refuse_behind(&writers.committed_positions(), &server_end)?;
    // Decoding resumes with the schemas the Delta tables hold; relation
    // messages tell what changed since.
    let catalog = tributary_postgres::connect::connect(source).await?;
    let stream = session.start(from_lsn, writers.source_schemas(), source.table_filter()?, catalog).await?;
    let acknowledger = stream.acknowledger();
    let (events_tx, events_rx) = mpsc::channel(64);
    let stop_reader = stream.stop_handle();
    let reader = tokio::spawn(read_wal(stream, events_tx, metrics.clone()));
    let heartbeat = spawn_heartbeat(source.clone(), client, metrics.clone());
    let slot_sampler = crate::metrics::slot::spawn_sampler(source.clone(), metrics.clone());
    Ok(SourceStream {
        events: events_rx,
        tasks: vec![heartbeat, slot_sampler],
        from,
        control: Box::new(SlotControl { acknowledger, stop_reader, reader }),
    })
}

/// Confirms durable positions as the slot's flush position; stops the reader
/// so that it tells the server the last confirmed position before it ends.
struct SlotControl {
    acknowledger: Acknowledger,
    stop_reader: StopHandle,
    reader: tokio::task::JoinHandle<()>,
}

impl SourceControl for SlotControl {
    fn confirm(&self, position: &SourcePosition) {
        if let SourcePosition::Postgres { lsn } = position {
            self.acknowledger.confirm(*lsn);
        }
    }

    fn stop(self: Box<Self>) -> Option<tokio::task::JoinHandle<()>> {
        self.stop_reader.stop();
        Some(self.reader)
    }
}

/// Copies `tables`: in chunks from the slot's consistent point (a new slot),
/// or from a temporary slot's (tables added to an existing pipeline), or
/// through that slot's exported snapshot (tables without a key, or
/// `snapshot_method = "one_transaction"`); a chunked copy a crash
/// interrupted continues from its own start on the same slot, without a
/// temporary slot. With snapshot = "never" they start empty at the slot's LSN.
async fn start_tables(
    source: &PostgresSourceConfig,
    client: &tributary_postgres::SqlClient,
    writers: &mut TableWriters,
    tables: &[Arc<TableSchema>],
    session: SlotSession,
    slot_is_new: bool,
) -> anyhow::Result<SlotSession> {
    let (chunked, whole) = match source.snapshot {
        SnapshotMode::Initial => snapshot::by_method(source.snapshot_method, tables),
        SnapshotMode::Never => (Vec::new(), tables.to_vec()),
    };
    // A copy continues only in chunks, and only on the slot it started with
    // (a new slot has not kept the WAL since); the rest starts over.
    let fresh_chunked = if slot_is_new { chunked.clone() } else { snapshot::without_progress(writers, &chunked) };
    let mut restart = fresh_chunked.clone();
    restart.extend(whole.iter().cloned());
    snapshot::reset_half_copied(writers, &restart).await?;
    // Tables added later start at a temporary slot's LSN (read through its
    // snapshot when not chunked); changes the main slot sends for them up to
    // that LSN are skipped by position.
    let temporary = if slot_is_new || restart.is_empty() {
        None
    } else {
        let name = format!("{}_snap_{}", source.slot, std::process::id());
        Some(SlotSession::open(source, client, &name, true).await?)
    };
    let exported = match &temporary {
        Some(t) => t.exported(),
        None => session.exported(),
    }
    .cloned();
    let position = exported.as_ref().map(|e| SourcePosition::Postgres { lsn: e.lsn });
    if source.snapshot == SnapshotMode::Never {
        let position = position.context("a new slot exports a snapshot")?;
        snapshot::start_empty(writers, tables, &position).await?;
        return Ok(session);
    }
    if !whole.is_empty() {
        let exported = exported.as_ref().context("a new slot exports a snapshot")?;
        let position = SourcePosition::Postgres { lsn: exported.lsn };
        let mut reader = SnapshotReader::open(source, exported).await.context("open the exported snapshot")?;
        snapshot::copy_tables(&mut reader, position, writers, &whole).await?;
        reader.finish().await.context("end the snapshot transaction")?;
    }
    // Everything committed before the slot's consistent point is visible to
    // every chunk read from now on, and the slot streams the rest: the
    // temporary slot is not needed while the chunks are read.
    drop(temporary);
    if !chunked.is_empty() {
        let start =
            if fresh_chunked.is_empty() { None } else { Some(position.context("a new slot exports a snapshot")?) };
        let mut readers = Vec::with_capacity(source.snapshot_parallelism);
        for _ in 0..source.snapshot_parallelism {
            readers.push(ChunkReader::connect(source).await.context("connect a snapshot reader")?);
        }
        let probe = ChunkReader::connect(source).await.context("connect a snapshot reader")?;
        let probe = &probe;
        let catch_up = move || async move { Ok(SourcePosition::Postgres { lsn: probe.wal_position().await? }) };
        let copy = ChunkedCopy {
            start,
            parallelism: source.snapshot_parallelism,
            chunk_rows: source.snapshot_chunk_rows,
            recopy: false,
        };
        chunked_snapshot::copy_chunked(readers, catch_up, copy, writers, &chunked).await?;
    }
    Ok(session)
}

/// Reads the replication stream in its own task so a slow commit never stalls keepalives.
async fn read_wal(mut stream: WalStream, events: mpsc::Sender<EventMessage>, metrics: Metrics) {
    loop {
        let message = match stream.next_events().await {
            Ok(batch) if batch.is_empty() => {
                // Stopped: the runner has confirmed its last commit; tell the server.
                stream.finish().await;
                return;
            }
            Ok(batch) => {
                count_events(&metrics, &batch);
                Ok(batch)
            }
            Err(e) => {
                metrics.error(ErrorKind::source);
                Err(anyhow::Error::new(e))
            }
        };
        let stop = message.is_err();
        if events.send(message).await.is_err() || stop {
            return;
        }
    }
}

/// Writes a heartbeat message every `heartbeat_secs`: when it comes back
/// through the stream with nothing in flight, the slot is confirmed up to it.
/// A lost SQL session is opened again on the next tick (the replication
/// connection may outlive it, e.g. after `idle_session_timeout`); one warning
/// per outage.
fn spawn_heartbeat(
    source: PostgresSourceConfig,
    client: tributary_postgres::SqlClient,
    metrics: Metrics,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut session = Some(client);
        let mut failing = false;
        let mut tick = tokio::time::interval(Duration::from_secs(source.heartbeat_secs));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            // A session lost since the last tick is replaced at once, so one tick writes one heartbeat.
            let mut written = Err("no SQL session".to_string());
            for _attempt in 0..2 {
                if session.is_none() {
                    session = tributary_postgres::connect::connect(&source).await.ok();
                }
                let Some(client) = &session else { break };
                written = write_heartbeat(client, super::snapshot::now_micros()).await.map_err(|e| e.to_string());
                if written.is_ok() {
                    break;
                }
                session = None;
            }
            match written {
                Ok(()) if failing => {
                    failing = false;
                    tracing::info!("heartbeat messages are written again");
                }
                Ok(()) => {}
                Err(e) => {
                    metrics.error(ErrorKind::source);
                    if !failing {
                        tracing::warn!(error = %e, "cannot write a heartbeat message (pg_logical_emit_message); retrying every heartbeat_secs");
                    }
                    failing = true;
                    session = None;
                }
            }
        }
    })
}
