//! Consistent reads of the selected tables. The initial snapshot
//! ([`SnapshotReader::open`]) hands over to the binlog stream with no gap and
//! no duplicate: every table is read inside one `REPEATABLE READ` transaction
//! whose binlog position is known exactly.
//!
//! * MariaDB: `START TRANSACTION WITH CONSISTENT SNAPSHOT`, then the status
//!   variables `Binlog_snapshot_file` / `Binlog_snapshot_position`, which the
//!   server keeps consistent with the snapshot without any lock.
//! * MySQL: `FLUSH TABLES WITH READ LOCK`, `START TRANSACTION WITH CONSISTENT
//!   SNAPSHOT`, the binlog status, `UNLOCK TABLES` (writes pause for the few
//!   milliseconds in between; needs the RELOAD privilege).
//!
//! A fresh read ([`SnapshotReader::open_fresh`], what `tributary validate`
//! uses) needs no binlog position: it runs `START TRANSACTION WITH CONSISTENT
//! SNAPSHOT, READ ONLY` alone, on either server, so it takes no lock and needs
//! only SELECT.
//!
//! Tables with a primary key are read in keyset-paginated chunks
//! (`WHERE key > last ORDER BY key LIMIT n`; ENUM / SET / BIT key parts are
//! compared by number and DECIMAL ones through a cast, so the comparison
//! follows the index order exactly). Tables without one are read in
//! one streaming query, handed out in chunks of the same size; their order is
//! whatever the server returns. The session runs with `time_zone = '+00:00'`
//! so TIMESTAMP values arrive as UTC.

pub mod chunks;
mod values;

use std::collections::HashMap;
use std::sync::Arc;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Params, Row as MyRow, Value as MyValue};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{info, warn};
use tributary_core::{ColumnType, MySqlPosition, Row, TableId, TableSchema};

use crate::config::MySqlSourceConfig;
use crate::connect::{
    binlog_status, connect, protocol, row_text, row_u64, server_info, Flavor, ServerInfo, ER_SPECIFIC_ACCESS_DENIED,
};
use crate::error::MySqlError;
use crate::schema_loader::{quote_ident, quote_table};
use values::RowConverter;

/// Seconds the server waits on a slow reader of a streaming query before giving up.
const NET_WRITE_TIMEOUT_SECS: u32 = 3600;
/// Why a failed streamed table cannot be read on.
const STREAM_FAILED: &str = "an earlier error stopped this table part-way and it has no primary key to resume from; \
                             take a new snapshot";
/// The snapshot connection is gone (a streaming task failed): its transaction with it.
const CONNECTION_LOST: &str = "the snapshot connection was lost with its transaction; take a new snapshot";
/// Chunks of a streamed table buffered ahead of the reader.
const STREAM_CHUNKS_AHEAD: usize = 2;

/// Reads the selected tables as of one consistent snapshot (for the initial
/// copy: as of one binlog position). End it with
/// [`SnapshotReader::finish`]: a dropped reader's transaction keeps its table
/// locks until the runtime gets round to closing the connection.
pub struct SnapshotReader {
    /// `None` while a table without primary key is being streamed by a task.
    conn: Option<Conn>,
    /// `None` for a fresh read ([`SnapshotReader::open_fresh`]).
    position: Option<MySqlPosition>,
    chunk_rows: u64,
    tables: Vec<Arc<TableSchema>>,
    cursors: HashMap<TableId, Cursor>,
}

/// Progress through one table.
enum Cursor {
    Keyset(KeysetCursor),
    Streaming(StreamingCursor),
    Done,
    /// A streamed table whose read failed part-way.
    Failed,
}

impl SnapshotReader {
    /// Connects, opens the consistent transaction and records its binlog
    /// position (on MySQL under a global read lock for an instant: see the module doc).
    pub async fn open(cfg: &MySqlSourceConfig, tables: Vec<Arc<TableSchema>>) -> Result<Self, MySqlError> {
        let mut conn = connect(cfg).await?;
        let info = server_info(&mut conn).await?;
        prepare_session(&mut conn).await?;
        let position = match info.flavor {
            Flavor::MariaDb => start_mariadb(&mut conn).await?,
            Flavor::MySql => start_mysql(&mut conn, &info, &cfg.user).await?,
        };
        info!(file = %position.file, offset = position.offset, tables = tables.len(), "snapshot opened");
        Self::opened(conn, Some(position), cfg, tables).await
    }

    /// Connects and opens a fresh consistent read that does not know its
    /// binlog position: `START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY`
    /// alone, no `FLUSH TABLES WITH READ LOCK`, no binlog status, so it takes
    /// no lock and needs neither RELOAD nor REPLICATION CLIENT, only SELECT.
    /// For reading what the source holds now (`tributary validate`), never
    /// for a snapshot that hands over to the stream.
    pub async fn open_fresh(cfg: &MySqlSourceConfig, tables: Vec<Arc<TableSchema>>) -> Result<Self, MySqlError> {
        let mut conn = connect(cfg).await?;
        prepare_session(&mut conn).await?;
        start_transaction(&mut conn, "opening a consistent read").await?;
        Self::opened(conn, None, cfg, tables).await
    }

    /// The reader over an opened transaction (warning about tables whose engine
    /// cannot give a consistent read).
    async fn opened(
        mut conn: Conn,
        position: Option<MySqlPosition>,
        cfg: &MySqlSourceConfig,
        tables: Vec<Arc<TableSchema>>,
    ) -> Result<Self, MySqlError> {
        warn_non_transactional(&mut conn, &tables).await?;
        Ok(SnapshotReader {
            conn: Some(conn),
            position,
            chunk_rows: cfg.snapshot_chunk_rows,
            tables,
            cursors: HashMap::new(),
        })
    }

    /// The binlog position the snapshot is consistent with: stream from here.
    /// `None` for a fresh read ([`SnapshotReader::open_fresh`]).
    pub fn position(&self) -> Option<MySqlPosition> {
        self.position.clone()
    }

    /// The tables this snapshot was opened for.
    pub fn tables(&self) -> &[Arc<TableSchema>] {
        &self.tables
    }

    /// Roughly how many rows `table` holds: `information_schema.TABLES.TABLE_ROWS`,
    /// or an exact `COUNT(*)` in the snapshot when that says 0 or NULL.
    pub async fn estimate_rows(&mut self, table: &TableSchema) -> Result<u64, MySqlError> {
        estimate_rows(self.idle_conn(&table.id)?, table).await
    }

    /// The next rows of `table` (at most `snapshot_chunk_rows`), `None` once it
    /// is read to the end. Read one table to the end before starting another
    /// when it has no primary key. After an error, calling again retries the
    /// same chunk of a table with primary key; a streamed table (without one)
    /// cannot resume and keeps failing.
    pub async fn next_chunk(&mut self, table: &TableSchema) -> Result<Option<Vec<Row>>, MySqlError> {
        let cursor = match self.cursors.remove(&table.id) {
            Some(cursor) => cursor,
            None => self.new_cursor(table)?,
        };
        let (result, cursor) = self.advance(cursor, &table.id).await;
        self.cursors.insert(table.id.clone(), cursor);
        result
    }

    /// One step of `cursor`, and the cursor to keep for the next call.
    async fn advance(&mut self, cursor: Cursor, id: &TableId) -> (Result<Option<Vec<Row>>, MySqlError>, Cursor) {
        match cursor {
            Cursor::Done => (Ok(None), Cursor::Done),
            Cursor::Failed => (Err(snapshot_error(id, STREAM_FAILED)), Cursor::Failed),
            Cursor::Keyset(mut c) => {
                let result = match self.idle_conn(id) {
                    Ok(conn) => c.next_chunk(conn).await,
                    Err(e) => Err(e),
                };
                let next = if c.done { Cursor::Done } else { Cursor::Keyset(c) };
                (result, next)
            }
            Cursor::Streaming(mut c) => match c.next_chunk().await {
                Ok(Some(rows)) => (Ok(Some(rows)), Cursor::Streaming(c)),
                Ok(None) => match c.finish().await {
                    Ok(conn) => {
                        self.conn = Some(conn);
                        (Ok(None), Cursor::Done)
                    }
                    Err(e) => (Err(e), Cursor::Failed),
                },
                Err(e) => {
                    self.conn = c.finish().await.ok();
                    (Err(e), Cursor::Failed)
                }
            },
        }
    }

    /// Ends the snapshot transaction and closes the connection.
    pub async fn finish(mut self) -> Result<(), MySqlError> {
        if let Some(mut conn) = self.conn.take() {
            conn.query_drop("COMMIT").await.map_err(|e| MySqlError::query("ending the snapshot", e))?;
            let _ = conn.disconnect().await;
        }
        Ok(())
    }

    /// The connection, unless a table without primary key is still streaming on it.
    fn idle_conn(&mut self, asking: &TableId) -> Result<&mut Conn, MySqlError> {
        let streaming = self.cursors.iter().find(|(_, c)| matches!(c, Cursor::Streaming(_))).map(|(id, _)| id.clone());
        match (self.conn.as_mut(), streaming) {
            (Some(conn), _) => Ok(conn),
            (None, Some(busy)) => Err(snapshot_error(
                asking,
                &format!("table {busy} (no primary key) is still being streamed; read it to the end first"),
            )),
            (None, None) => Err(snapshot_error(asking, CONNECTION_LOST)),
        }
    }

    /// Keyset for tables with a primary key, a streaming query for the others.
    fn new_cursor(&mut self, table: &TableSchema) -> Result<Cursor, MySqlError> {
        let table = Arc::new(table.clone());
        if table.has_primary_key() {
            return Ok(Cursor::Keyset(KeysetCursor::new(table, self.chunk_rows)));
        }
        self.idle_conn(&table.id)?;
        let conn = self.conn.take().ok_or_else(|| snapshot_error(&table.id, CONNECTION_LOST))?;
        Ok(Cursor::Streaming(StreamingCursor::start(conn, table, self.chunk_rows)))
    }
}

/// Roughly how many rows `table` holds: `information_schema.TABLES.TABLE_ROWS`,
/// or an exact `COUNT(*)` when that says 0 or NULL.
pub(crate) async fn estimate_rows(conn: &mut Conn, table: &TableSchema) -> Result<u64, MySqlError> {
    let context = format!("estimating the rows of {}", table.id);
    let sql = "SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?";
    let row: Option<MyRow> = conn
        .exec_first(sql, (table.id.schema.as_str(), table.id.name.as_str()))
        .await
        .map_err(|e| MySqlError::query(context.as_str(), e))?;
    if let Some(n) = row.map(|r| row_u64(&r, 0, &context)).transpose()?.flatten().filter(|n| *n > 0) {
        return Ok(n);
    }
    let count: Option<MyRow> = conn
        .query_first(format!("SELECT COUNT(*) FROM {}", quote_table(&table.id)))
        .await
        .map_err(|e| MySqlError::query(context.as_str(), e))?;
    Ok(count.map(|r| row_u64(&r, 0, &context)).transpose()?.flatten().unwrap_or(0))
}

fn snapshot_error(table: &TableId, problem: &str) -> MySqlError {
    MySqlError::Snapshot { table: table.to_string(), problem: problem.to_string() }
}

/// REPEATABLE READ, UTC session time zone, UTF-8 results, patience with slow readers.
async fn prepare_session(conn: &mut Conn) -> Result<(), MySqlError> {
    let statements = [
        "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ".to_string(),
        "SET time_zone = '+00:00'".to_string(),
        "SET NAMES utf8mb4".to_string(),
        format!("SET SESSION net_write_timeout = {NET_WRITE_TIMEOUT_SECS}"),
    ];
    for sql in statements {
        conn.query_drop(&sql)
            .await
            .map_err(|e| MySqlError::query(format!("preparing the snapshot session ({sql})"), e))?;
    }
    Ok(())
}

/// MariaDB keeps the binlog position of a consistent snapshot in status variables.
async fn start_mariadb(conn: &mut Conn) -> Result<MySqlPosition, MySqlError> {
    const CONTEXT: &str = "opening the MariaDB snapshot";
    start_transaction(conn, CONTEXT).await?;
    let rows: Vec<MyRow> =
        conn.query("SHOW STATUS LIKE 'binlog_snapshot_%'").await.map_err(|e| MySqlError::query(CONTEXT, e))?;
    let mut status = HashMap::new();
    for row in &rows {
        status.insert(row_text(row, 0, CONTEXT)?.to_ascii_lowercase(), row_text(row, 1, CONTEXT)?);
    }
    let file = status.get("binlog_snapshot_file").filter(|f| !f.is_empty());
    let offset = status.get("binlog_snapshot_position").and_then(|p| p.parse::<u64>().ok());
    match (file, offset) {
        (Some(file), Some(offset)) => {
            // Labelled with its GTID so the table can continue on a promoted replica.
            let mut position = MySqlPosition::new(file.clone(), offset);
            position.gtid = crate::connect::mariadb_gtid_at(conn, &position).await?;
            Ok(position)
        }
        _ => Err(protocol(CONTEXT, format!("Binlog_snapshot_file / _position missing or empty: {status:?}"))),
    }
}

/// MySQL: a global read lock for the instant it takes to open the snapshot and read the position.
async fn start_mysql(conn: &mut Conn, info: &ServerInfo, user: &str) -> Result<MySqlPosition, MySqlError> {
    const CONTEXT: &str = "opening the MySQL snapshot";
    conn.query_drop("SET SESSION lock_wait_timeout = 60").await.map_err(|e| MySqlError::query(CONTEXT, e))?;
    match conn.query_drop("FLUSH TABLES WITH READ LOCK").await {
        Ok(()) => {}
        Err(mysql_async::Error::Server(s)) if s.code == ER_SPECIFIC_ACCESS_DENIED => {
            return Err(MySqlError::MissingPrivilege {
                user: user.to_string(),
                privilege: "RELOAD".into(),
                on: "*.*".into(),
            });
        }
        Err(e) => {
            return Err(MySqlError::query("FLUSH TABLES WITH READ LOCK (a long query may hold a table; retry)", e))
        }
    }
    let locked = open_locked(conn, info, user).await;
    let unlocked = conn.query_drop("UNLOCK TABLES").await.map_err(|e| MySqlError::query(CONTEXT, e));
    let position = locked?;
    unlocked?;
    Ok(position)
}

/// The part of [`start_mysql`] that runs under the read lock.
async fn open_locked(conn: &mut Conn, info: &ServerInfo, user: &str) -> Result<MySqlPosition, MySqlError> {
    start_transaction(conn, "opening the MySQL snapshot").await?;
    binlog_status(conn, info, user).await
}

/// The consistent, read-only transaction every read of this module runs in.
async fn start_transaction(conn: &mut Conn, context: &str) -> Result<(), MySqlError> {
    conn.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
        .await
        .map_err(|e| MySqlError::query(context, e))
}

/// Only transactional engines give a consistent snapshot; say so for the others.
async fn warn_non_transactional(conn: &mut Conn, tables: &[Arc<TableSchema>]) -> Result<(), MySqlError> {
    const CONTEXT: &str = "reading table engines";
    let mut schemas: Vec<&str> = tables.iter().map(|t| t.id.schema.as_str()).collect();
    schemas.sort_unstable();
    schemas.dedup();
    if schemas.is_empty() {
        return Ok(());
    }
    let placeholders = vec!["?"; schemas.len()].join(", ");
    let sql = format!(
        "SELECT TABLE_SCHEMA, TABLE_NAME, COALESCE(ENGINE, '') FROM information_schema.TABLES WHERE TABLE_SCHEMA IN ({placeholders})"
    );
    let params: Vec<MyValue> = schemas.iter().map(|s| MyValue::from(*s)).collect();
    let rows: Vec<MyRow> =
        conn.exec(sql, Params::Positional(params)).await.map_err(|e| MySqlError::query(CONTEXT, e))?;
    for row in &rows {
        let id = TableId::new(row_text(row, 0, CONTEXT)?, row_text(row, 1, CONTEXT)?);
        let engine = row_text(row, 2, CONTEXT)?;
        let transactional = ["innodb", "rocksdb"].contains(&engine.to_ascii_lowercase().as_str());
        if !transactional && tables.iter().any(|t| t.id == id) {
            warn!(table = %id, engine = %engine, "table engine is not transactional: its snapshot may not match the binlog position");
        }
    }
    Ok(())
}

/// Keyset pagination over the primary key of one table.
struct KeysetCursor {
    table: TableId,
    converter: RowConverter,
    first_sql: String,
    next_sql: String,
    /// For each placeholder of `next_sql`, the result-row index of the value it takes.
    param_sources: Vec<usize>,
    chunk_rows: u64,
    /// Key values (as the server sent them) of the last row read.
    last: Option<Vec<MyValue>>,
    done: bool,
}

impl KeysetCursor {
    fn new(table: Arc<TableSchema>, chunk_rows: u64) -> Self {
        let plan = KeysetPlan::new(&table);
        let select = format!("SELECT {} FROM {}", plan.select_list, quote_table(&table.id));
        let order = format!("ORDER BY {} LIMIT {chunk_rows}", plan.order_by);
        KeysetCursor {
            table: table.id.clone(),
            first_sql: format!("{select} {order}"),
            next_sql: format!("{select} WHERE {} {order}", plan.condition),
            param_sources: plan.param_sources,
            converter: RowConverter::new(table),
            chunk_rows,
            last: None,
            done: false,
        }
    }

    async fn next_chunk(&mut self, conn: &mut Conn) -> Result<Option<Vec<Row>>, MySqlError> {
        if self.done {
            return Ok(None);
        }
        let rows: Vec<MyRow> = match &self.last {
            None => conn.exec(self.first_sql.as_str(), ()).await,
            Some(last) => conn.exec(self.next_sql.as_str(), Params::Positional(last.clone())).await,
        }
        .map_err(|e| MySqlError::query(format!("reading a snapshot chunk of {}", self.table), e))?;
        let done = (rows.len() as u64) < self.chunk_rows;
        let Some(last_row) = rows.last() else {
            self.done = true;
            return Ok(None);
        };
        let last = self.param_sources.iter().map(|&i| last_row.as_ref(i).cloned()).collect::<Option<Vec<MyValue>>>();
        let last = last.ok_or_else(|| protocol("reading a snapshot chunk", "a key column is missing"))?;
        let converted = rows.into_iter().map(|r| self.converter.convert(r.unwrap())).collect::<Result<Vec<_>, _>>()?;
        // Only a fully converted chunk moves the cursor, so a retry after an error reads it again.
        self.last = Some(last);
        self.done = done;
        Ok(Some(converted))
    }
}

/// The SQL pieces of a keyset scan.
#[derive(Debug, PartialEq, Eq)]
struct KeysetPlan {
    /// Every column, then one numeric helper per ENUM / SET / BIT key column.
    select_list: String,
    order_by: String,
    /// `k1 >= ? AND (k1 > ? OR (k1 = ? AND k2 > ?))`.
    condition: String,
    param_sources: Vec<usize>,
}

impl KeysetPlan {
    fn new(table: &TableSchema) -> Self {
        let mut select: Vec<String> = table.columns.iter().map(|c| quote_ident(&c.name)).collect();
        let mut keys = Vec::with_capacity(table.primary_key.len());
        for &idx in &table.primary_key {
            let column = &table.columns[idx];
            let name = quote_ident(&column.name);
            // ENUM / SET / BIT sort by their number, but compare with a string
            // as text: the key value passed back must be that number.
            let value_source = if needs_numeric_key(&column.source_type) {
                select.push(format!("({name} + 0)"));
                select.len() - 1
            } else {
                idx
            };
            keys.push(KeyPart {
                placeholder: placeholder_for(&column.data_type, &column.source_type),
                name,
                value_source,
            });
        }
        let order_by = keys.iter().map(|k| k.name.as_str()).collect::<Vec<_>>().join(", ");
        let (condition, params) = keyset_condition(&keys);
        let param_sources = params.iter().map(|&k| keys[k].value_source).collect();
        KeysetPlan { select_list: select.join(", "), order_by, condition, param_sources }
    }
}

/// One primary-key column of a keyset scan.
struct KeyPart {
    name: String,
    /// `?`, or a cast that makes the comparison exact.
    placeholder: String,
    /// Result-row index of the value to compare with.
    value_source: usize,
}

fn needs_numeric_key(source_type: &str) -> bool {
    let t = source_type.trim_start().to_ascii_lowercase();
    t.starts_with("enum") || t.starts_with("set") || t.starts_with("bit")
}

/// DECIMAL keys compare with a string parameter as doubles; cast it back to the column's type.
fn placeholder_for(data_type: &ColumnType, source_type: &str) -> String {
    let lower = source_type.trim().to_ascii_lowercase();
    let is_decimal = matches!(data_type, ColumnType::Decimal { .. }) || lower.starts_with("decimal");
    match lower.split_once(')') {
        Some((head, _)) if is_decimal && head.starts_with("decimal(") => format!("CAST(? AS {head}))"),
        _ if is_decimal => "CAST(? AS DECIMAL(65,30))".to_string(),
        _ => "?".to_string(),
    }
}

/// The "after the last key" condition and, per placeholder, which key part it takes.
fn keyset_condition(keys: &[KeyPart]) -> (String, Vec<usize>) {
    fn after(keys: &[KeyPart], i: usize, params: &mut Vec<usize>) -> String {
        let k = &keys[i];
        if i + 1 == keys.len() {
            params.push(i);
            return format!("{} > {}", k.name, k.placeholder);
        }
        params.extend([i, i]);
        let rest = after(keys, i + 1, params);
        format!("({name} > {p} OR ({name} = {p} AND {rest}))", name = k.name, p = k.placeholder)
    }
    let mut params = Vec::new();
    if keys.len() == 1 {
        let condition = after(keys, 0, &mut params);
        return (condition, params);
    }
    // The leading `k1 >= ?` lets the server use a range scan on the key.
    params.push(0);
    let lead = format!("{} >= {}", keys[0].name, keys[0].placeholder);
    let rest = after(keys, 0, &mut params);
    (format!("{lead} AND {rest}"), params)
}

/// A table without primary key, streamed by one query on a task that owns the
/// connection until the table is read; chunks come through a bounded channel.
struct StreamingCursor {
    rx: mpsc::Receiver<Result<Vec<Row>, MySqlError>>,
    task: JoinHandle<Conn>,
}

impl StreamingCursor {
    fn start(conn: Conn, table: Arc<TableSchema>, chunk_rows: u64) -> Self {
        let (tx, rx) = mpsc::channel(STREAM_CHUNKS_AHEAD);
        let columns = table.columns.iter().map(|c| quote_ident(&c.name)).collect::<Vec<_>>().join(", ");
        let sql = format!("SELECT {columns} FROM {}", quote_table(&table.id));
        let chunk_rows = usize::try_from(chunk_rows).unwrap_or(usize::MAX);
        let task = tokio::spawn(stream_rows(conn, sql, RowConverter::new(table), chunk_rows, tx));
        StreamingCursor { rx, task }
    }

    async fn next_chunk(&mut self) -> Result<Option<Vec<Row>>, MySqlError> {
        self.rx.recv().await.transpose()
    }

    /// Stops reading (if not done) and takes the connection back.
    async fn finish(self) -> Result<Conn, MySqlError> {
        drop(self.rx);
        self.task.await.map_err(|e| protocol("streaming a table without primary key", e.to_string()))
    }
}

/// The streaming task: sends chunks until the result ends, the reader goes away or an error (sent too).
async fn stream_rows(
    mut conn: Conn,
    sql: String,
    converter: RowConverter,
    chunk_rows: usize,
    tx: mpsc::Sender<Result<Vec<Row>, MySqlError>>,
) -> Conn {
    if let Err(e) = send_rows(&mut conn, &sql, &converter, chunk_rows, &tx).await {
        let _ = tx.send(Err(e)).await;
    }
    conn
}

async fn send_rows(
    conn: &mut Conn,
    sql: &str,
    converter: &RowConverter,
    chunk_rows: usize,
    tx: &mpsc::Sender<Result<Vec<Row>, MySqlError>>,
) -> Result<(), MySqlError> {
    let context = || format!("streaming a snapshot ({sql})");
    let mut result = conn.exec_iter(sql, ()).await.map_err(|e| MySqlError::query(context(), e))?;
    let capacity = chunk_rows.min(1 << 16);
    let mut chunk = Vec::with_capacity(capacity);
    while let Some(row) = result.next().await.map_err(|e| MySqlError::query(context(), e))? {
        chunk.push(converter.convert(row.unwrap())?);
        if chunk.len() >= chunk_rows {
            let full = std::mem::replace(&mut chunk, Vec::with_capacity(capacity));
            if tx.send(Ok(full)).await.is_err() {
                return Ok(());
            }
        }
    }
    if !chunk.is_empty() {
        let _ = tx.send(Ok(chunk)).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tributary_core::Column;

    fn col(name: &str, data_type: ColumnType, source_type: &str) -> Column {
        Column { name: name.into(), data_type, nullable: false, source_type: source_type.into(), source_id: None }
    }

    fn table(columns: Vec<Column>, primary_key: Vec<usize>) -> TableSchema {
        TableSchema { id: TableId::new("shop", "orders"), columns, primary_key }
    }

    #[test]
    fn single_column_keys_use_a_plain_comparison() {
        let t = table(vec![col("id", ColumnType::Int64, "bigint"), col("v", ColumnType::Text, "text")], vec![0]);
        let plan = KeysetPlan::new(&t);
        assert_eq!(plan.select_list, "`id`, `v`");
        assert_eq!(plan.order_by, "`id`");
        assert_eq!(plan.condition, "`id` > ?");
        assert_eq!(plan.param_sources, vec![0]);
    }

    #[test]
    fn composite_keys_expand_to_a_range_friendly_condition() {
        let t = table(
            vec![
                col("v", ColumnType::Text, "text"),
                col("b", ColumnType::Int32, "int"),
                col("a", ColumnType::Int32, "int"),
                col("c", ColumnType::Int32, "int"),
            ],
            vec![2, 1, 3],
        );
        let plan = KeysetPlan::new(&t);
        assert_eq!(plan.order_by, "`a`, `b`, `c`");
        assert_eq!(plan.condition, "`a` >= ? AND (`a` > ? OR (`a` = ? AND (`b` > ? OR (`b` = ? AND `c` > ?))))");
        assert_eq!(plan.param_sources, vec![2, 2, 2, 1, 1, 3]);
    }

    #[test]
    fn enum_and_bit_keys_compare_by_number() {
        let t = table(
            vec![col("kind", ColumnType::Text, "enum('b','a')"), col("flags", ColumnType::Bytes, "bit(8)")],
            vec![0, 1],
        );
        let plan = KeysetPlan::new(&t);
        assert_eq!(plan.select_list, "`kind`, `flags`, (`kind` + 0), (`flags` + 0)");
        assert_eq!(plan.param_sources, vec![2, 2, 2, 3]);
    }

    #[test]
    fn decimal_keys_cast_their_parameter() {
        let t =
            table(vec![col("d", ColumnType::Decimal { precision: 30, scale: 4 }, "decimal(30,4) unsigned")], vec![0]);
        assert_eq!(KeysetPlan::new(&t).condition, "`d` > CAST(? AS decimal(30,4))");
        let wide = table(vec![col("d", ColumnType::Text, "decimal(65,30)")], vec![0]);
        assert_eq!(KeysetPlan::new(&wide).condition, "`d` > CAST(? AS decimal(65,30))");
    }

    #[test]
    fn chunk_queries_order_and_limit() {
        let t = Arc::new(table(vec![col("id", ColumnType::Int32, "int")], vec![0]));
        let c = KeysetCursor::new(t, 500);
        assert_eq!(c.first_sql, "SELECT `id` FROM `shop`.`orders` ORDER BY `id` LIMIT 500");
        assert_eq!(c.next_sql, "SELECT `id` FROM `shop`.`orders` WHERE `id` > ? ORDER BY `id` LIMIT 500");
    }
}
