//! The live binlog stream: registers as a replica, asks the server for the
//! binlog from a position, and feeds every event to the shared
//! [`BinlogDecoder`]. The server sends a heartbeat after `heartbeat_secs` of
//! silence, so an idle source is told apart from a dead connection.
//!
//! Session set-up before the dump: `@master_heartbeat_period` (and
//! `@source_heartbeat_period`, its MySQL 8.0.26+ name) in nanoseconds, and on
//! MariaDB `@mariadb_slave_capability = 4` so the server sends its own GTID,
//! GTID-list and annotate events instead of rewriting them for old replicas.
//! mysql_async itself sets `@master_binlog_checksum = 'ALL'` when it
//! registers, which makes the server send (and the reader strip) checksums.
//!
//! DDL on a captured table: before the next event is decoded, the table's
//! new schema is read from `information_schema` on a second connection
//! (opened on the first DDL, reopened after an error) and handed to the
//! decoder, which emits the `SchemaChange` at the statement's position.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use mysql_async::prelude::Queryable;
use mysql_async::{BinlogStream, BinlogStreamRequest, Conn};
use mysql_common::binlog::events::Event;
use tracing::info;
use tributary_core::{ChangeEvent, MySqlPosition, TableId, TableSchema};

use crate::config::MySqlSourceConfig;
use crate::connect::{binlog_status, connect, server_info, Flavor};
use crate::decoder::{BinlogDecoder, PendingDdl};
use crate::error::MySqlError;
use crate::schema_loader::{load_table_schemas, LiveSchemaResolver};

/// MariaDB replica capability: understands GTID events (`MARIA_SLAVE_CAPABILITY_GTID`).
const MARIADB_SLAVE_CAPABILITY_GTID: u8 = 4;
/// Binlog event type of a heartbeat (`HEARTBEAT_LOG_EVENT`).
const HEARTBEAT_EVENT: u8 = 0x1b;
/// MySQL 8.0.26+ `HEARTBEAT_LOG_EVENT_V2`.
const HEARTBEAT_EVENT_V2: u8 = 0x29;
/// Server error 1236: the source cannot send the binlog (purged file, bad position, duplicate replica id).
const ER_MASTER_FATAL_ERROR_READING_BINLOG: u16 = 1236;
/// A stream silent for this many heartbeat periods is dead.
const MISSED_HEARTBEATS: u32 = 3;

/// A live binlog stream decoded into change events.
pub struct BinlogSource {
    stream: BinlogStream,
    decoder: BinlogDecoder<LiveSchemaResolver>,
    address: String,
    start: MySqlPosition,
    idle_limit: Duration,
    cfg: MySqlSourceConfig,
    /// Connection reading table schemas after DDL statements.
    catalog: Option<Conn>,
}

impl BinlogSource {
    /// Connects and requests the binlog from `from` (the snapshot's position
    /// or the last committed one): the first event read is the one at `from`.
    pub async fn start(
        cfg: &MySqlSourceConfig,
        resolver: LiveSchemaResolver,
        from: MySqlPosition,
    ) -> Result<Self, MySqlError> {
        let mut conn = connect(cfg).await?;
        let info = server_info(&mut conn).await?;
        prepare_replica_session(&mut conn, info.flavor, cfg.heartbeat_secs).await?;
        let request = BinlogStreamRequest::new(cfg.server_id).with_filename(from.file.as_bytes()).with_pos(from.offset);
        let stream = conn.get_binlog_stream(request).await.map_err(|e| stream_error(&from, e))?;
        info!(file = %from.file, offset = from.offset, server_id = cfg.server_id, "binlog stream started");
        let heartbeat = Duration::from_secs(cfg.heartbeat_secs);
        Ok(BinlogSource {
            stream,
            decoder: BinlogDecoder::new(resolver, from.file.clone()).with_gtid(from.gtid.clone()),
            address: cfg.address(),
            start: from,
            idle_limit: heartbeat * MISSED_HEARTBEATS + Duration::from_secs(1),
            cfg: cfg.clone(),
            catalog: None,
        })
    }

    /// The change events of the next binlog event: possibly none (heartbeats,
    /// table maps, rows of unselected tables); `Ok(None)` when the server ends
    /// the stream. A stream silent for three heartbeat periods is an error
    /// ([`MySqlError::Connect`], transient).
    pub async fn next(&mut self) -> Result<Option<Vec<ChangeEvent>>, MySqlError> {
        let item =
            tokio::time::timeout(self.idle_limit, self.stream.next()).await.map_err(|_| MySqlError::Connect {
                address: self.address.clone(),
                reason: format!("no binlog event or heartbeat for {} s", self.idle_limit.as_secs()),
            })?;
        match item {
            None => Ok(None),
            Some(Err(e)) => Err(stream_error(&self.position(), e)),
            Some(Ok(event)) => {
                let mut events = self.decode(&event)?;
                while let Some(pending) = self.decoder.take_pending_ddl() {
                    let loaded = self.load_schemas(&pending).await?;
                    events.extend(self.decoder.finish_ddl(pending, loaded));
                }
                Ok(Some(events))
            }
        }
    }

    /// The catalog's schemas of the tables a DDL statement changed (`None`
    /// for a table the catalog no longer has); one retry on a new connection.
    async fn load_schemas(
        &mut self,
        pending: &PendingDdl,
    ) -> Result<HashMap<TableId, Option<Arc<TableSchema>>>, MySqlError> {
        let ids: Vec<TableId> = pending.tables.iter().map(|(id, _)| id.clone()).collect();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let conn = match self.catalog.as_mut() {
                Some(conn) => conn,
                None => self.catalog.insert(connect(&self.cfg).await?),
            };
            match load_table_schemas(conn, &ids).await {
                Ok(mut found) => return Ok(ids.iter().map(|id| (id.clone(), found.remove(id))).collect()),
                Err(e @ (MySqlError::Query { .. } | MySqlError::Connect { .. })) if attempt == 1 => {
                    tracing::debug!(error = %e, "catalog connection failed; reconnecting");
                    if let Some(conn) = self.catalog.take() {
                        let _ = conn.disconnect().await;
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Heartbeats stop here: their log_pos says where the server is, which need
    /// not be the end of an event this stream decoded, so they never move ours.
    fn decode(&mut self, event: &Event) -> Result<Vec<ChangeEvent>, MySqlError> {
        let kind = event.header().event_type_raw();
        if kind == HEARTBEAT_EVENT || kind == HEARTBEAT_EVENT_V2 {
            return Ok(Vec::new());
        }
        Ok(self.decoder.decode(event)?)
    }

    /// The position after the last event decoded (the start position before any).
    pub fn position(&self) -> MySqlPosition {
        let p = self.decoder.position();
        if p < self.start {
            return self.start.clone();
        }
        p
    }

    /// The resolver, e.g. to look at the schemas it serves.
    pub fn resolver_mut(&mut self) -> &mut LiveSchemaResolver {
        self.decoder.resolver_mut()
    }

    /// Closes the replica connection (and the catalog one).
    pub async fn close(self) -> Result<(), MySqlError> {
        if let Some(conn) = self.catalog {
            let _ = conn.disconnect().await;
        }
        self.stream.close().await.map_err(|e| MySqlError::query("closing the binlog stream", e))
    }
}

/// Heartbeats, and on MariaDB the GTID-aware replica capability.
async fn prepare_replica_session(conn: &mut Conn, flavor: Flavor, heartbeat_secs: u64) -> Result<(), MySqlError> {
    let nanos = heartbeat_secs.saturating_mul(1_000_000_000);
    let mut statements =
        vec![format!("SET @master_heartbeat_period = {nanos}"), format!("SET @source_heartbeat_period = {nanos}")];
    if flavor == Flavor::MariaDb {
        statements.push(format!("SET @mariadb_slave_capability = {MARIADB_SLAVE_CAPABILITY_GTID}"));
    }
    for sql in statements {
        conn.query_drop(&sql)
            .await
            .map_err(|e| MySqlError::query(format!("preparing the replica session ({sql})"), e))?;
    }
    Ok(())
}

/// Error 1236 becomes [`MySqlError::BinlogUnavailable`]; everything else a query error.
fn stream_error(position: &MySqlPosition, e: mysql_async::Error) -> MySqlError {
    match e {
        mysql_async::Error::Server(s) if s.code == ER_MASTER_FATAL_ERROR_READING_BINLOG => {
            MySqlError::BinlogUnavailable {
                position: format!("{}:{}", position.file, position.offset),
                reason: s.message,
            }
        }
        other => MySqlError::query(format!("reading the binlog near {}:{}", position.file, position.offset), other),
    }
}

/// The current end of the server's binlog.
pub async fn current_server_position(cfg: &MySqlSourceConfig) -> Result<MySqlPosition, MySqlError> {
    let mut conn = connect(cfg).await?;
    let info = server_info(&mut conn).await?;
    let position = binlog_status(&mut conn, &info, &cfg.user).await?;
    let _ = conn.disconnect().await;
    Ok(position)
}

/// [`current_server_position`] labelled with its GTID on MariaDB: where a
/// table starts with `snapshot = "never"`.
pub async fn start_position(cfg: &MySqlSourceConfig) -> Result<MySqlPosition, MySqlError> {
    let mut conn = connect(cfg).await?;
    let info = server_info(&mut conn).await?;
    let position = binlog_status(&mut conn, &info, &cfg.user).await?;
    let position = crate::connect::label_with_gtid(&mut conn, &info, position).await?;
    let _ = conn.disconnect().await;
    Ok(position)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mysql_async::ServerError;

    #[test]
    fn error_1236_says_the_binlog_is_unavailable_and_what_to_do() {
        let e = mysql_async::Error::Server(ServerError {
            code: 1236,
            message: "Could not find first log file name in binary log index file".into(),
            state: "HY000".into(),
        });
        let err = stream_error(&MySqlPosition::new("mariadb-bin.000001", 4), e).to_string();
        assert!(err.contains("mariadb-bin.000001:4") && err.contains("Could not find first log"), "{err}");
        assert!(err.contains("source.server_id") && err.contains("snapshot"), "{err}");
    }
}
