//! The logical replication session, behind Tributary's own
//! [`ReplicationStream`] trait: pg_walstream speaks the streaming replication
//! protocol (slot creation with an exported snapshot, START_REPLICATION,
//! keepalives, standby status updates) and decodes pgoutput; this module
//! decides what is acknowledged and when.
//!
//! Why pg_walstream: it is the one maintained crate that fetches here and both
//! speaks the replication protocol and decodes pgoutput (v1-4); tokio-postgres
//! has no replication mode, and pgwire-replication leaves row decoding to the
//! caller. It has one maintainer, so nothing outside this module and
//! [`crate::decoder`] names its types.

use crate::config::PostgresSourceConfig;
use crate::connect::{replication_conninfo, replication_tls_error};
use crate::decoder::PgOutputDecoder;
use crate::error::{one_line, PostgresError};
use pg_walstream::{
    CancellationToken, LogicalReplicationStream, ReplicationSlotOptions, ReplicationStreamConfig, RetryConfig,
    SharedLsnFeedback, StreamingMode,
};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::Client;
use tributary_core::{ChangeEvent, Lsn, TableSchema};

/// At most this many events are returned by one read (the rest of a large
/// transaction follows in the next reads); bounds what the reader's channel
/// buffers.
const MAX_EVENTS_PER_READ: usize = 256;

/// What the pipeline needs of a logical replication connection.
pub trait ReplicationStream: Send {
    /// The next events, in source order (one pgoutput message may give
    /// several); empty once [`StopHandle::stop`] was called.
    fn next_events(&mut self) -> impl Future<Output = Result<Vec<ChangeEvent>, PostgresError>> + Send;

    /// The handle through which durable progress is confirmed to the server.
    fn acknowledger(&self) -> Acknowledger;

    /// The handle that ends [`ReplicationStream::next_events`] from another task.
    fn stop_handle(&self) -> StopHandle;

    /// Sends the server a last status update (what was confirmed) and closes the stream.
    fn finish(self) -> impl Future<Output = ()> + Send;
}

/// Ends a stream's reading from another task (see [`ReplicationStream::stop_handle`]).
#[derive(Debug, Clone)]
pub struct StopHandle(CancellationToken);

impl StopHandle {
    pub fn stop(&self) {
        self.0.cancel();
    }
}

/// Confirms to the server, as the slot's flush position, what the sink holds durably.
#[derive(Debug, Clone)]
pub struct Acknowledger(Arc<SharedLsnFeedback>);

impl Acknowledger {
    /// Everything up to `lsn` is durable in the sink; the server may drop the WAL before it.
    pub fn confirm(&self, lsn: Lsn) {
        self.0.update_applied_lsn(lsn.0);
    }

    /// The last LSN confirmed.
    pub fn confirmed(&self) -> Lsn {
        Lsn(self.0.get_applied_lsn())
    }
}

/// The snapshot a newly created slot exported, and the LSN it is consistent at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportedSnapshot {
    pub name: String,
    pub lsn: Lsn,
}

/// A replication session on the configured slot, before streaming starts.
pub struct SlotSession {
    stream: LogicalReplicationStream,
    exported: Option<ExportedSnapshot>,
    slot: String,
}

impl SlotSession {
    /// Connects a replication session on `slot` and creates the slot (with an
    /// exported snapshot) when it does not exist. A `temporary` slot lives as
    /// long as the session. `client` is an SQL session on the same database.
    pub async fn open(
        cfg: &PostgresSourceConfig,
        client: &Client,
        slot: &str,
        temporary: bool,
    ) -> Result<Self, PostgresError> {
        let options = ReplicationSlotOptions { temporary, snapshot: Some("export".into()), ..Default::default() };
        let config = ReplicationStreamConfig::builder(slot, cfg.publication.clone())
            .with_protocol_version(1)
            .with_streaming_mode(StreamingMode::Off)
            .with_messages(true)
            .with_slot_options(options)
            .with_connection_timeout(Duration::from_secs(cfg.connect_timeout_secs))
            .with_feedback_interval(Duration::from_secs(1))
            .with_retry_config(RetryConfig { max_attempts: 1, ..RetryConfig::default() });
        let slot_error = |problem: String| PostgresError::Slot { slot: slot.to_string(), problem };
        let mut stream = LogicalReplicationStream::new(&replication_conninfo(cfg), config).await.map_err(|e| {
            let text = one_line(&e);
            replication_tls_error(cfg, &text).unwrap_or_else(|| {
                PostgresError::replication("opening a replication session", &e, |reason| {
                    slot_error(format!("cannot open a replication session: {reason}"))
                })
            })
        })?;
        stream.ensure_replication_slot().await.map_err(|e| {
            PostgresError::replication("creating the replication slot", &e, |reason| {
                slot_error(format!("cannot create it: {reason}"))
            })
        })?;
        let exported = match stream.exported_snapshot_name() {
            Some(name) => {
                let row = client
                    .query_one(
                        "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1",
                        &[&slot],
                    )
                    .await
                    .map_err(|e| PostgresError::query("read the new slot's consistent point", e))?;
                let text: String = row.get(0);
                let lsn = pg_walstream::parse_lsn(&text).map_err(|e| slot_error(format!("bad LSN {text}: {e}")))?;
                tracing::info!(slot, lsn = %Lsn(lsn), temporary, "replication slot created with an exported snapshot");
                Some(ExportedSnapshot { name: name.to_string(), lsn: Lsn(lsn) })
            }
            None => None,
        };
        Ok(SlotSession { stream, exported, slot: slot.to_string() })
    }

    /// The exported snapshot, when this session created the slot. It stays
    /// valid until [`SlotSession::start`] or until the session is dropped.
    pub fn exported(&self) -> Option<&ExportedSnapshot> {
        self.exported.as_ref()
    }

    /// Starts streaming after `from` (the end of the last durable
    /// transaction), decoding with `tables` (the schemas in force at `from`);
    /// `catalog` is an SQL session for looking up the types of changed columns.
    ///
    /// `new_tables` selects tables the stream shows that were created after
    /// the start (possible with a `FOR ALL TABLES` publication).
    pub async fn start(
        mut self,
        from: Lsn,
        tables: Vec<Arc<TableSchema>>,
        new_tables: tributary_core::TableFilter,
        catalog: Client,
    ) -> Result<WalStream, PostgresError> {
        self.stream.start(Some(from.0)).await.map_err(|e| {
            PostgresError::replication("starting logical replication", &e, |reason| PostgresError::Slot {
                slot: self.slot.clone(),
                problem: format!("cannot start streaming from {from}: {reason}"),
            })
        })?;
        tracing::info!(slot = %self.slot, %from, "logical replication started");
        let feedback = self.stream.shared_lsn_feedback.clone();
        feedback.update_applied_lsn(from.0);
        Ok(WalStream {
            stream: self.stream,
            decoder: PgOutputDecoder::new(tables).with_new_tables(new_tables),
            feedback,
            cancel: CancellationToken::new(),
            catalog,
            slot: self.slot,
            handed_out: from,
            mid_transaction: false,
        })
    }
}

/// A started pgoutput stream.
pub struct WalStream {
    stream: LogicalReplicationStream,
    decoder: PgOutputDecoder,
    feedback: Arc<SharedLsnFeedback>,
    cancel: CancellationToken,
    catalog: Client,
    slot: String,
    /// The LSN of the last transaction end or heartbeat handed to the
    /// pipeline, and whether a transaction was handed over in part after it.
    handed_out: Lsn,
    mid_transaction: bool,
}

/// How often a reader waiting between transactions checks whether it may
/// confirm what the server sent since (see [`WalStream::confirm_caught_up`]).
const IDLE_TICK: Duration = Duration::from_secs(1);

impl WalStream {
    /// The next replication event, or `None` after [`IDLE_TICK`] without one.
    /// pg_walstream's reads are cancellation-safe (a frame read in part stays
    /// in its buffer), so the tick cancels only the wait.
    async fn next_event_or_idle_tick(
        &mut self,
    ) -> Option<Result<pg_walstream::ChangeEvent, pg_walstream::ReplicationError>> {
        let wake = self.cancel.child_token();
        let timer = {
            let wake = wake.clone();
            tokio::spawn(async move {
                tokio::time::sleep(IDLE_TICK).await;
                wake.cancel();
            })
        };
        let next = self.stream.next_event(&wake).await;
        timer.abort();
        match next {
            Err(pg_walstream::ReplicationError::Cancelled(_)) if !self.cancel.is_cancelled() => None,
            other => Some(other),
        }
    }

    /// With every transaction handed to the pipeline durable (the pipeline
    /// confirmed the last one's end) and nothing handed over in part, the
    /// whole stream received so far is accounted for: keepalives carry the
    /// server's send position, which follows everything it sent before. So
    /// the slot may be confirmed up to what was received — as PostgreSQL's
    /// own subscriber does. Without it, a server shutting down waits forever
    /// for the confirmation of its shutdown checkpoint (fast shutdown hung
    /// while a pipeline was connected), and an idle slot moves only with
    /// heartbeat messages.
    async fn confirm_caught_up(&mut self) {
        let (_, confirmed) = self.feedback.get_feedback_lsn();
        let received = self.stream.current_lsn();
        tracing::trace!(
            received = %Lsn(received),
            confirmed = %Lsn(confirmed),
            handed_out = %self.handed_out,
            mid_transaction = self.mid_transaction,
            "idle: confirm what was received?"
        );
        if self.mid_transaction || confirmed < self.handed_out.0 || received <= confirmed {
            return;
        }
        self.feedback.update_applied_lsn(received);
        if let Err(e) = self.stream.send_feedback().await {
            tracing::debug!(error = %one_line(&e), "status update not sent");
        }
    }
}

impl ReplicationStream for WalStream {
    async fn next_events(&mut self) -> Result<Vec<ChangeEvent>, PostgresError> {
        // pgoutput sends a transaction whole and one message per row: read on to
        // its commit (or a bound) so the pipeline gets rows in runs, not one
        // wake-up per row (530k context switches for 1M inserts before).
        let mut out = Vec::new();
        loop {
            let boundary = matches!(out.last(), Some(ChangeEvent::Commit { .. } | ChangeEvent::Heartbeat { .. }));
            if !out.is_empty() && (boundary || out.len() >= MAX_EVENTS_PER_READ) {
                break;
            }
            let next = if out.is_empty() {
                // Between batches: wake up now and then to confirm what the
                // server sent past the last transaction once that is durable.
                match self.next_event_or_idle_tick().await {
                    Some(next) => next,
                    None => {
                        self.confirm_caught_up().await;
                        continue;
                    }
                }
            } else {
                self.stream.next_event(&self.cancel).await
            };
            let event = match next {
                Ok(event) => event,
                Err(_) if self.cancel.is_cancelled() => return Ok(out),
                // A removed or invalidated slot, refused credentials: a person must act.
                Err(e) if e.is_permanent() => {
                    return Err(PostgresError::Slot { slot: self.slot.clone(), problem: one_line(&e) })
                }
                // Anything else ends this connection only: the pipeline reconnects and
                // resumes from what the Delta tables hold.
                Err(e) => return Err(PostgresError::Replication(one_line(&e))),
            };
            if let pg_walstream::EventType::Relation { relation_id, columns, .. } = &event.event_type {
                for (oid, typmod) in self.decoder.missing_types(columns) {
                    let pg_type = crate::schema_loader::lookup_type(&self.catalog, oid, typmod).await?;
                    self.decoder.add_type(oid, typmod, pg_type);
                }
                let attnums = crate::schema_loader::column_numbers(&self.catalog, *relation_id).await?;
                self.decoder.set_catalog_columns(*relation_id, attnums);
            }
            self.decoder.decode(event, &mut out)?;
        }
        match out.last() {
            Some(ChangeEvent::Commit { position, .. } | ChangeEvent::Heartbeat { position, .. }) => {
                if let tributary_core::SourcePosition::Postgres { lsn } = position {
                    self.handed_out = *lsn;
                }
                self.mid_transaction = false;
            }
            Some(_) => self.mid_transaction = true,
            None => {}
        }
        if matches!(out.last(), Some(ChangeEvent::Commit { .. } | ChangeEvent::Heartbeat { .. })) {
            // Once per transaction or heartbeat (at most every feedback interval):
            // report what the sink has confirmed since, also on a quiet stream.
            self.stream.maybe_send_feedback().await;
        }
        Ok(out)
    }

    fn acknowledger(&self) -> Acknowledger {
        Acknowledger(self.feedback.clone())
    }

    fn stop_handle(&self) -> StopHandle {
        StopHandle(self.cancel.clone())
    }

    async fn finish(mut self) {
        if let Err(e) = self.stream.send_feedback().await {
            tracing::debug!(error = %one_line(&e), "last status update not sent");
        }
        let _ = self.stream.stop().await;
    }
}

/// Writes a heartbeat message into the WAL (not transactional, so it is sent
/// at once); `content` is the current time, for the lag gauge.
pub async fn write_heartbeat(client: &Client, now_micros: i64) -> Result<(), PostgresError> {
    client
        .execute(
            "SELECT pg_logical_emit_message(false, $1, $2::text)",
            &[&crate::decoder::HEARTBEAT_PREFIX, &now_micros.to_string()],
        )
        .await
        .map_err(|e| PostgresError::query("write a heartbeat message", e))?;
    Ok(())
}

/// Drops `slot` (after a failed first start, so that nothing is left behind).
pub async fn drop_slot(client: &Client, slot: &str) -> Result<(), PostgresError> {
    client
        .execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active",
            &[&slot],
        )
        .await
        .map_err(|e| PostgresError::query(format!("drop replication slot {slot}"), e))?;
    Ok(())
}

/// Bytes of WAL the server keeps for `slot` (current WAL LSN − restart_lsn);
/// `None` when the slot does not exist.
pub async fn slot_retained_wal(client: &Client, slot: &str) -> Result<Option<u64>, PostgresError> {
    let row = client
        .query_opt(
            "SELECT GREATEST(pg_current_wal_lsn() - restart_lsn, 0)::bigint FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .map_err(|e| PostgresError::query("read the slot's retained WAL", e))?;
    Ok(row.map(|r| r.get::<_, Option<i64>>(0).unwrap_or(0) as u64))
}

/// The server's current WAL insert position: how far its history reaches.
pub async fn current_wal_lsn(client: &Client) -> Result<Lsn, PostgresError> {
    query_lsn(client, "SELECT pg_current_wal_lsn()::text", "read the current WAL position").await
}

/// The current WAL insert position: every transaction visible to a read
/// that ended before this call has its commit record at or before it.
pub async fn current_wal_insert_lsn(client: &Client) -> Result<Lsn, PostgresError> {
    query_lsn(client, "SELECT pg_current_wal_insert_lsn()::text", "read the WAL insert position").await
}

/// Runs `sql`, which returns one LSN as text.
async fn query_lsn(client: &Client, sql: &str, context: &str) -> Result<Lsn, PostgresError> {
    let row = client.query_one(sql, &[]).await.map_err(|e| PostgresError::query(context, e))?;
    let text: String = row.get(0);
    pg_walstream::parse_lsn(&text)
        .map(Lsn)
        .map_err(|e| PostgresError::Query { context: context.into(), reason: e.to_string() })
}

/// True when `slot` exists on the server (whether or not a session holds it).
pub async fn slot_exists(client: &Client, slot: &str) -> Result<bool, PostgresError> {
    let row = client
        .query_opt("SELECT 1 FROM pg_replication_slots WHERE slot_name = $1", &[&slot])
        .await
        .map_err(|e| PostgresError::query("look up the replication slot", e))?;
    Ok(row.is_some())
}
