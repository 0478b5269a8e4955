//! `tributary run`: the source starts (preflight, snapshot of new tables,
//! reader task), then the streaming loop commits whole transactions in
//! micro-batches until Ctrl-C / SIGTERM, and confirms to the source only
//! what is durable in Delta. A lost source connection is reconnected in
//! process (see [`super::reconnect`] for which errors and how often).

use super::assembler::TransactionAssembler;
use super::batch::MicroBatch;
use super::reconnect::{self, StreamEnded};
use super::recopy::{Recopy, RecopyRequest, Written};
use super::source_check::SourceMismatch;
use super::source_control::SourceControl;
use super::writers::TableWriters;
use crate::config::{PipelineConfig, SourceConfig};
use crate::metrics::registry::Op;
use crate::metrics::{Metrics, PipelineState};
use anyhow::{bail, Context};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tributary_core::{ChangeEvent, ErrorClass, SourcePosition, TableId};

/// What a source reader task sends: events in source order, or why it stopped.
pub type EventMessage = anyhow::Result<Vec<ChangeEvent>>;

/// A connected source: the events read from `from` on, the tasks to stop
/// when it ends, and how durable progress is confirmed.
pub struct SourceStream {
    pub events: mpsc::Receiver<EventMessage>,
    pub tasks: Vec<JoinHandle<()>>,
    pub from: SourcePosition,
    /// Where durable progress is confirmed and how the reader stops.
    pub control: Box<dyn SourceControl>,
}

impl SourceStream {
    /// Stops the reader (letting it tell the server what was confirmed) and the tasks beside it.
    async fn stop(self) {
        if let Some(reader) = self.control.stop() {
            if tokio::time::timeout(Duration::from_secs(5), reader).await.is_err() {
                tracing::warn!("the source reader did not stop within 5 s");
            }
        }
        for task in self.tasks {
            task.abort();
        }
    }
}

/// A started source: the Delta writers (every table holds a position) and the stream.
pub struct Started {
    pub writers: TableWriters,
    /// The stream, or why it could not start once the tables were ready
    /// (a transient cause is reconnected like a lost connection).
    pub stream: anyhow::Result<SourceStream>,
}

/// Runs the pipeline until `shutdown` turns true; then commits the complete
/// transactions already read and returns. When a reconnect finds a promoted
/// replica of the same GTID domain behind the source address, everything
/// starts again on it (the tables continue by GTID, see [`super::failover`]).
///
/// `requests` brings `tributary resnapshot` requests ([`super::recopy`]).
pub async fn run(
    config: &PipelineConfig,
    shutdown: watch::Receiver<bool>,
    metrics: &Metrics,
    requests: &mut mpsc::Receiver<RecopyRequest>,
) -> anyhow::Result<()> {
    loop {
        match run_until_stopped(config, shutdown.clone(), metrics, requests).await {
            Err(e) if matches!(e.downcast_ref(), Some(SourceMismatch::FailedOver { .. })) => {
                tracing::warn!(reason = %e, "the source failed over");
                metrics.set_state(PipelineState::Starting);
            }
            other => return other,
        }
    }
}

/// [`run`] on one source server.
async fn run_until_stopped(
    config: &PipelineConfig,
    mut shutdown: watch::Receiver<bool>,
    metrics: &Metrics,
    requests: &mut mpsc::Receiver<RecopyRequest>,
) -> anyhow::Result<()> {
    let started = match &config.source {
        SourceConfig::Mysql(_) => super::mysql_source::start(config, metrics).await?,
        SourceConfig::Postgres(_) => super::postgres_source::start(config, metrics).await?,
    };
    let Started { mut writers, stream } = started;
    let mut stream = match stream {
        Ok(stream) => stream,
        Err(e) if reconnect::classify(&e) == ErrorClass::Transient => {
            match reconnect(config, &writers, metrics, &mut shutdown, e).await? {
                Some(stream) => stream,
                None => {
                    metrics.set_state(PipelineState::Stopping);
                    tracing::info!("stopped while reconnecting, before streaming started");
                    return Ok(());
                }
            }
        }
        Err(e) => return Err(e),
    };
    if metrics.state() != PipelineState::Stopping {
        metrics.set_state(PipelineState::Streaming);
    }
    metrics.source_connected(true);

    let mut assembler = TransactionAssembler::default();
    let mut batch =
        MicroBatch::new(config.pipeline.batch_max_rows, Duration::from_millis(config.pipeline.batch_max_wait_ms));
    let idle_after = Duration::from_secs(config.pipeline.idle_commit_secs);
    // A transaction with more changes than this is applied in parts of this size.
    let part_rows = match config.pipeline.transaction_part_rows {
        0 => usize::MAX,
        rows => rows,
    };
    let mut flushed_position: Option<SourcePosition> = None;
    let mut read_position = stream.from.clone();
    let mut read_commit_ts = 0i64;
    let mut last_idle_check = Instant::now();
    let mut maintenance = super::maintenance::Maintenance::new(&config.maintenance);
    maintenance.report_files(&mut writers);
    // A re-copy under way, and tables whose re-copy is to start or continue
    // (after a restart, or a failed chunk read: not before the instant given).
    let mut recopy: Option<Recopy> = None;
    let mut recopy_next: Vec<(TableId, Instant)> =
        writers.unfinished_recopies().into_iter().map(|t| (t, Instant::now())).collect();
    let mut waiting: Option<RecopyRequest> = None;
    let mut chunk_gate = Instant::now();
    let mut requests_open = true;
    loop {
        let wake = batch.deadline().unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
        let mut lost: Option<anyhow::Error> = None;
        let mut chunk = None;
        let mut recopy_done = false;
        tokio::select! {
            _ = shutdown.changed() => break,
            request = requests.recv(), if requests_open && waiting.is_none() => match request {
                Some(request) => waiting = Some(request),
                None => requests_open = false,
            },
            // A chunk waits while events are queued and the loop has not yet
            // spent as long on them as on the last chunk: the other tables'
            // lag must not grow with the copy.
            read = next_chunk(&mut recopy), if Instant::now() >= chunk_gate || stream.events.is_empty() => {
                chunk = Some(read)
            }
            message = stream.events.recv() => match message {
                Some(Ok(events)) => {
                    for event in events {
                        if let ChangeEvent::Heartbeat { position, commit_ts } = &event {
                            // Everything before it has been read; once that is all in
                            // Delta, the source may forget it and the lag is zero.
                            metrics.source_read(*commit_ts);
                            if !assembler.in_transaction() && batch.is_empty() {
                                metrics.source_applied(*commit_ts);
                                stream.control.confirm(&writers.confirmable(position));
                            } else if !assembler.in_transaction() {
                                // The open batch holds everything before it: its commit
                                // confirms the heartbeat too. Forgetting it left the slot
                                // short of the end of the WAL, and a PostgreSQL fast
                                // shutdown (no new heartbeats) waited for it forever.
                                read_position = position.clone();
                                read_commit_ts = read_commit_ts.max(*commit_ts);
                            }
                            continue;
                        }
                        let completed = assembler.push(event)?;
                        if assembler.take_dropped_parts() {
                            writers.abandon_parts();
                        }
                        if let Some(mut txn) = completed {
                            let parts = assembler.take_finished_parts();
                            if !txn.schema_changes.is_empty() {
                                // A schema change lands in order: what came before it first.
                                if !batch.is_empty() {
                                    let read = (&read_position, read_commit_ts);
                                    commit(&mut batch, &mut writers, metrics, stream.control.as_ref(), read).await?;
                                    flushed_position = Some(read_position.clone());
                                }
                                let existing = existing_row_values(config, &writers, &txn).await?;
                                txn = writers.apply_schema_changes(txn, &existing).await?;
                            }
                            read_position = txn.position.clone();
                            read_commit_ts = read_commit_ts.max(txn.commit_ts);
                            batch.push_rest(txn, parts);
                        } else if let Some(part) = assembler.take_part(part_rows) {
                            // A transaction too large to hold whole: what came before it
                            // is committed first, then its part is written (not committed).
                            if !batch.is_empty() {
                                let read = (&read_position, read_commit_ts);
                                commit(&mut batch, &mut writers, metrics, stream.control.as_ref(), read).await?;
                                flushed_position = Some(read_position.clone());
                            }
                            let started = Instant::now();
                            let changes = part.txn.changes.len();
                            let rows = writers.apply_part(super::batch::split_part(part)).await?;
                            tracing::debug!(changes, rows, ms = started.elapsed().as_millis() as u64,
                                "part of a large transaction written");
                        }
                    }
                }
                Some(Err(e)) => lost = Some(e),
                None => lost = Some(anyhow::Error::new(StreamEnded)),
            },
            _ = tokio::time::sleep_until(wake.into()) => {}
        }
        if let Some(error) = lost {
            if reconnect::classify(&error) != ErrorClass::Transient {
                let stored = writers.committed_positions();
                let error = match super::source_check::explain_stream_failure(config, &stored).await {
                    Some(cause) => anyhow::Error::new(cause),
                    None => error,
                };
                metrics.health().set_fatal(format!("the source reader failed: {}", crate::one_line(&error)));
                return Err(error);
            }
            // What is complete is committed; the half-read transaction is read again.
            if !batch.is_empty() {
                commit(&mut batch, &mut writers, metrics, stream.control.as_ref(), (&read_position, read_commit_ts))
                    .await?;
                flushed_position = Some(read_position.clone());
            }
            assembler = TransactionAssembler::default();
            writers.abandon_parts();
            stream.stop().await;
            match reconnect(config, &writers, metrics, &mut shutdown, error).await? {
                Some(again) => stream = again,
                None => {
                    metrics.set_state(PipelineState::Stopping);
                    tracing::info!(position = %read_position, "stopped while reconnecting; everything read is committed");
                    return Ok(());
                }
            }
            continue;
        }
        if let Some(read) = chunk {
            let copy = recopy.as_mut().expect("a chunk comes from a re-copy");
            let table = copy.table().clone();
            let started = Instant::now();
            let written = match read {
                Ok(chunk) => copy.write(chunk, &mut writers).await.map(Some),
                Err(e) => match super::recopy::retry_after(&e) {
                    Some(delay) => {
                        tracing::warn!(table = %table, error = %crate::one_line(&e),
                            "a chunk read of the re-copy failed; continuing from the last committed chunk shortly");
                        recopy.take().expect("checked").abandon(&mut writers);
                        recopy_next.push((table.clone(), Instant::now() + delay));
                        Ok(None)
                    }
                    None => Err(e),
                },
            };
            let written = written.with_context(|| format!("re-copy of {table}"))?;
            chunk_gate = Instant::now() + started.elapsed();
            recopy_done = matches!(written, Some(Written::Done));
        }
        if recopy.is_none() && !writers.has_open_parts() {
            if let Some(request) = waiting.take() {
                let answer = match parse_table(&request.table, &writers) {
                    Ok(table) => {
                        if !batch.is_empty() {
                            let read = (&read_position, read_commit_ts);
                            commit(&mut batch, &mut writers, metrics, stream.control.as_ref(), read).await?;
                            flushed_position = Some(read_position.clone());
                        }
                        start_recopy(config, &mut writers, &table, &mut recopy).await
                    }
                    Err(e) => Err(e),
                };
                let _ = request.reply.send(answer);
            } else if let Some(at) = recopy_next.iter().position(|(_, at)| *at <= Instant::now()) {
                let (table, _) = recopy_next.remove(at);
                if let Err(e) = start_recopy(config, &mut writers, &table, &mut recopy).await {
                    bail!("continue the re-copy of {table}: {e}");
                }
            }
            // Nothing was left to read (a restart after the last chunk): the copy ended as it started.
            recopy_done = recopy.as_ref().is_some_and(Recopy::done);
        } else if let Some(request) = waiting.take_if(|_| recopy.is_some()) {
            let busy = recopy.as_ref().map(|r| r.table().to_string()).unwrap_or_default();
            let _ = request.reply.send(Err(format!(
                "a re-copy of {busy} is under way; tables are copied again one at a time, ask when it is done"
            )));
        }
        if recopy_done {
            // The copied table replays everything since its copy's start: what
            // was read so far is committed while its changes are still held back.
            let table = recopy.take().expect("a re-copy ended").table().clone();
            if !batch.is_empty() {
                commit(&mut batch, &mut writers, metrics, stream.control.as_ref(), (&read_position, read_commit_ts))
                    .await?;
            }
            writers.release_recopy(&table);
            assembler = TransactionAssembler::default();
            writers.abandon_parts();
            stream.stop().await;
            match restart_stream(config, &writers, metrics, &mut shutdown).await? {
                Some(again) => stream = again,
                None => {
                    metrics.set_state(PipelineState::Stopping);
                    tracing::info!("stopped while reconnecting after a re-copy; everything read is committed");
                    return Ok(());
                }
            }
            read_position = stream.from.clone();
            // What was flushed of the old stream says nothing about the copied
            // table (its changes were dropped): no idle commit may move it there.
            flushed_position = None;
            continue;
        }
        if batch.is_due() && super::failpoint::sink_stalled() {
            // Test failpoint: keep reading, commit nothing (and do not spin on the past deadline).
            metrics.health().commit_waiting();
            tokio::time::sleep(Duration::from_millis(100)).await;
        } else if batch.is_due() {
            commit(&mut batch, &mut writers, metrics, stream.control.as_ref(), (&read_position, read_commit_ts))
                .await?;
            flushed_position = Some(read_position.clone());
        }
        if writers.has_open_parts() {
            // Nothing else commits while a transaction is open in parts.
            continue;
        }
        if last_idle_check.elapsed() >= idle_after.min(Duration::from_secs(60)) {
            last_idle_check = Instant::now();
            if let Some(position) = &flushed_position {
                writers.advance_idle(position, idle_after).await?;
            }
        }
        if maintenance.due() {
            maintenance.run(&mut writers).await;
        }
    }
    metrics.set_state(PipelineState::Stopping);
    if !batch.is_empty() {
        commit(&mut batch, &mut writers, metrics, stream.control.as_ref(), (&read_position, read_commit_ts)).await?;
    }
    // A transaction read only in part is read again at the next start.
    writers.abandon_parts();
    stream.stop().await;
    tracing::info!(position = %read_position, "stopped after committing the last complete transactions");
    Ok(())
}

/// The next chunk of the re-copy under way; pending while there is none.
async fn next_chunk(recopy: &mut Option<Recopy>) -> anyhow::Result<super::chunked_snapshot::Chunk> {
    match recopy {
        Some(copy) => copy.next_chunk().await,
        None => std::future::pending().await,
    }
}

/// `database.table` of a re-copy request, when it names a table of this pipeline.
fn parse_table(name: &str, writers: &TableWriters) -> Result<TableId, String> {
    let Some((schema, table)) = name.split_once('.') else {
        return Err(format!("table {name:?}: give it as database.table (PostgreSQL: schema.table)"));
    };
    let id = TableId::new(schema, table);
    if writers.committed_position(&id).is_none() {
        return Err(format!("{id} is not a table this pipeline streams (see `tributary status`)"));
    }
    if writers.is_stopped(&id) {
        return Err(format!(
            "{id} is stopped (see /readyz): a re-copy keeps its Delta schema; stop the pipeline, move its Delta \
             table directory aside and start it to copy it with the new schema"
        ));
    }
    Ok(id)
}

/// Starts (or continues) the re-copy of `table` into `slot`; the answer to the request.
async fn start_recopy(
    config: &PipelineConfig,
    writers: &mut TableWriters,
    table: &TableId,
    slot: &mut Option<Recopy>,
) -> Result<String, String> {
    match Recopy::start(config, writers, table).await {
        Ok(copy) => {
            let start = writers.get_mut(table).and_then(|w| w.snapshot_progress().map(|p| p.start.to_string()));
            *slot = Some(copy);
            let start = start.unwrap_or_default();
            tracing::info!(%table, %start, "re-copy under way; the other tables keep streaming");
            Ok(format!("re-copy of {table} started at {start}; `tributary status` shows its progress"))
        }
        Err(e) => {
            tracing::error!(%table, error = %crate::one_line(&e), "the re-copy could not start");
            Err(format!("re-copy of {table} not started: {}", crate::one_line(&e)))
        }
    }
}

/// Starts the source stream again from the lowest committed position (after
/// a re-copy: its start), each table skipping what it holds; `None` when
/// `shutdown` came while reconnecting.
async fn restart_stream(
    config: &PipelineConfig,
    writers: &TableWriters,
    metrics: &Metrics,
    shutdown: &mut watch::Receiver<bool>,
) -> anyhow::Result<Option<SourceStream>> {
    let again = match &config.source {
        SourceConfig::Mysql(_) => super::mysql_source::reconnect(config, writers, metrics).await,
        SourceConfig::Postgres(_) => super::postgres_source::reconnect(config, writers, metrics).await,
    };
    match again {
        Ok(stream) => {
            tracing::info!(position = %stream.from, "streaming again from the lowest committed position");
            Ok(Some(stream))
        }
        Err(e) if reconnect::classify(&e) == ErrorClass::Transient => {
            reconnect(config, writers, metrics, shutdown, e).await
        }
        Err(e) => Err(e),
    }
}

/// After a transient source failure (`cause`): waits with backoff and
/// connects again until the stream runs, a non-transient error needs a
/// person, the attempts run out, or `shutdown` turns true (`Ok(None)`).
async fn reconnect(
    config: &PipelineConfig,
    writers: &TableWriters,
    metrics: &Metrics,
    shutdown: &mut watch::Receiver<bool>,
    cause: anyhow::Error,
) -> anyhow::Result<Option<SourceStream>> {
    metrics.source_connected(false);
    metrics.source_reconnect();
    tracing::warn!(error = %crate::one_line(&cause), "lost the source connection; reconnecting");
    let lost_at = Instant::now();
    let policy = &config.pipeline;
    let mut backoff =
        reconnect::Backoff::new(Duration::from_secs(policy.reconnect_max_secs), policy.reconnect_max_attempts);
    let mut last = cause;
    loop {
        let Some(delay) = backoff.next_delay() else {
            let attempts = backoff.attempts();
            metrics.health().set_fatal(format!("the source stayed unreachable: {}", crate::one_line(&last)));
            return Err(last.context(format!(
                "gave up after {attempts} reconnect attempts (pipeline.reconnect_max_attempts; 0 retries forever)"
            )));
        };
        tokio::select! {
            _ = shutdown.changed() => return Ok(None),
            _ = tokio::time::sleep(delay) => {}
        }
        let attempt = async {
            let now = super::source_control::owner(config).await?;
            super::source_check::refuse_other_server(writers.owner(), &now)?;
            match &config.source {
                SourceConfig::Mysql(_) => super::mysql_source::reconnect(config, writers, metrics).await,
                SourceConfig::Postgres(_) => super::postgres_source::reconnect(config, writers, metrics).await,
            }
        };
        match attempt.await {
            Ok(stream) => {
                metrics.source_connected(true);
                tracing::info!(
                    attempts = backoff.attempts(),
                    seconds = format!("{:.1}", lost_at.elapsed().as_secs_f64()),
                    position = %stream.from,
                    "reconnected to the source"
                );
                return Ok(Some(stream));
            }
            Err(e) if reconnect::classify(&e) == ErrorClass::Transient => {
                tracing::info!(attempt = backoff.attempts(), error = %crate::one_line(&e), "source still unreachable");
                last = e;
            }
            Err(e) if matches!(e.downcast_ref(), Some(SourceMismatch::FailedOver { .. })) => return Err(e),
            Err(e) => {
                metrics.health().set_fatal(format!("cannot reconnect to the source: {}", crate::one_line(&e)));
                return Err(e);
            }
        }
    }
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
    super::failpoint::hold_commit().await;
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
