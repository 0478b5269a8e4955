//! Chunked, lock-free reads for the initial copy of tables with a primary
//! key (docs/snapshots.md): each chunk is one `SELECT ... WHERE key > last
//! [AND key <= lane end] ORDER BY key LIMIT n` in autocommit, so no global
//! lock, no RELOAD grant and no long transaction is needed. The copy is made
//! exact by streaming from a position read before the first chunk
//! ([`copy_start_position`]) and matching replayed inserts by key until a
//! position read after the last one.
//!
//! A table is split into lanes (key ranges between sampled keys) that
//! several connections read at once. A lane's state is JSON (the last key
//! read and the lane's end, as the server sends key values), stored in the
//! Delta commits so that a restart continues where the copy stopped.

use std::sync::Arc;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Params, Row as MyRow, Value as MyValue};
use serde_json::{json, Value as J};
use tributary_core::{MySqlPosition, Row, TableSchema};

use super::values::RowConverter;
use super::{prepare_session, start_mariadb, KeysetPlan};
use crate::config::MySqlSourceConfig;
use crate::connect::{binlog_status, connect, label_with_gtid, protocol, server_info, Flavor};
use crate::error::MySqlError;
use crate::schema_loader::quote_table;

/// How long a MySQL copy waits after reading its start position before the
/// first chunk (see [`copy_start_position`]).
const MYSQL_START_MARGIN: Duration = Duration::from_secs(1);

/// Where streaming continues after a chunked copy that starts now: every
/// transaction the binlog holds up to it is visible to every chunk read
/// afterwards, without any lock.
///
/// * MariaDB: the binlog position of a `START TRANSACTION WITH CONSISTENT
///   SNAPSHOT` (exact; the transaction is closed at once).
/// * MySQL: `SHOW BINARY LOG STATUS`, then a pause of one second: a
///   transaction is written to the binlog just before its storage-engine
///   commit makes it visible, so one in that instant would otherwise be
///   missed by the first chunk and not replayed (docs/snapshots.md).
pub async fn copy_start_position(cfg: &MySqlSourceConfig) -> Result<MySqlPosition, MySqlError> {
    let mut conn = connect(cfg).await?;
    let info = server_info(&mut conn).await?;
    prepare_session(&mut conn).await?;
    let position = match info.flavor {
        Flavor::MariaDb => {
            let position = start_mariadb(&mut conn).await?;
            conn.query_drop("COMMIT").await.map_err(|e| MySqlError::query("closing the start transaction", e))?;
            position
        }
        Flavor::MySql => {
            let position = binlog_status(&mut conn, &info, &cfg.user).await?;
            let position = label_with_gtid(&mut conn, &info, position).await?;
            tokio::time::sleep(MYSQL_START_MARGIN).await;
            position
        }
    };
    let _ = conn.disconnect().await;
    Ok(position)
}

/// One connection reading chunks of any table.
pub struct ChunkReader {
    conn: Conn,
    chunk_rows: u64,
}

impl ChunkReader {
    /// Connects a session for chunk reads (UTC, UTF-8, autocommit).
    pub async fn connect(cfg: &MySqlSourceConfig) -> Result<Self, MySqlError> {
        let mut conn = connect(cfg).await?;
        prepare_session(&mut conn).await?;
        Ok(ChunkReader { conn, chunk_rows: cfg.snapshot_chunk_rows })
    }

    /// Roughly how many rows `table` holds (for the progress bar and the split).
    pub async fn estimate_rows(&mut self, table: &TableSchema) -> Result<u64, MySqlError> {
        super::estimate_rows(&mut self.conn, table).await
    }

    /// Splits `table` into at most `lanes` key ranges of about equal rows
    /// (`estimate` in total), by reading the key at evenly spaced offsets of
    /// the primary key. Returns each lane's initial state.
    pub async fn split(&mut self, table: &TableSchema, lanes: usize, estimate: u64) -> Result<Vec<J>, MySqlError> {
        let plan = KeysetPlan::new(table);
        let mut bounds: Vec<Vec<MyValue>> = Vec::new();
        let lanes = lanes.max(1) as u64;
        for i in 1..lanes {
            let offset = estimate * i / lanes;
            let sql = format!(
                "SELECT {} FROM {} ORDER BY {} LIMIT 1 OFFSET {offset}",
                plan.select_list,
                quote_table(&table.id),
                plan.order_by
            );
            let row: Option<MyRow> = self
                .conn
                .query_first(sql)
                .await
                .map_err(|e| MySqlError::query(format!("sampling the keys of {}", table.id), e))?;
            let Some(row) = row else { break };
            let key = key_params(&plan, &row)?;
            if bounds.last() != Some(&key) {
                bounds.push(key);
            }
        }
        let mut states = Vec::with_capacity(bounds.len() + 1);
        let mut after: Option<Vec<MyValue>> = None;
        for bound in bounds.into_iter().map(Some).chain([None]) {
            states.push(lane_state(after.as_deref(), bound.as_deref()));
            after = bound;
        }
        Ok(states)
    }

    /// Reads the next chunk of the lane `state`: its rows and the lane's next
    /// state, `None` once the lane is read to its end.
    pub async fn read(&mut self, table: &TableSchema, state: &J) -> Result<(Vec<Row>, Option<J>), MySqlError> {
        let plan = KeysetPlan::new(table);
        let after = state.get("after").filter(|v| !v.is_null()).map(params_from_json).transpose()?;
        let until = state.get("until").filter(|v| !v.is_null()).map(params_from_json).transpose()?;
        let mut conditions = Vec::new();
        let mut params = Vec::new();
        if let Some(after) = &after {
            conditions.push(plan.condition.clone());
            params.extend(after.iter().cloned());
        }
        if let Some(until) = &until {
            conditions.push(format!("NOT ({})", plan.condition));
            params.extend(until.iter().cloned());
        }
        let mut sql = format!("SELECT {} FROM {}", plan.select_list, quote_table(&table.id));
        if !conditions.is_empty() {
            sql.push_str(&format!(" WHERE {}", conditions.join(" AND ")));
        }
        sql.push_str(&format!(" ORDER BY {} LIMIT {}", plan.order_by, self.chunk_rows));
        let rows: Vec<MyRow> = self
            .conn
            .exec(sql, Params::Positional(params))
            .await
            .map_err(|e| MySqlError::query(format!("reading a snapshot chunk of {}", table.id), e))?;
        let done = (rows.len() as u64) < self.chunk_rows;
        let next = match rows.last() {
            Some(last) if !done => Some(lane_state(Some(&key_params(&plan, last)?), until.as_deref())),
            _ => None,
        };
        let converter = RowConverter::new(Arc::new(table.clone()));
        let converted = rows.into_iter().map(|r| converter.convert(r.unwrap())).collect::<Result<Vec<_>, _>>()?;
        Ok((converted, next))
    }

    /// Closes the connection.
    pub async fn close(self) {
        let _ = self.conn.disconnect().await;
    }
}

/// The values a keyset condition's placeholders take for the key of `row`.
fn key_params(plan: &KeysetPlan, row: &MyRow) -> Result<Vec<MyValue>, MySqlError> {
    plan.param_sources
        .iter()
        .map(|&i| row.as_ref(i).cloned())
        .collect::<Option<Vec<MyValue>>>()
        .ok_or_else(|| protocol("reading a snapshot chunk", "a key column is missing"))
}

fn lane_state(after: Option<&[MyValue]>, until: Option<&[MyValue]>) -> J {
    let encode = |values: Option<&[MyValue]>| values.map(|v| J::Array(v.iter().map(value_to_json).collect()));
    json!({ "after": encode(after), "until": encode(until) })
}

/// A key value as the server sent it, in JSON (exact: bytes in hex, numbers as they are).
fn value_to_json(value: &MyValue) -> J {
    match value {
        MyValue::NULL => J::Null,
        MyValue::Bytes(b) => json!({ "b": hex(b) }),
        MyValue::Int(i) => json!({ "i": i }),
        MyValue::UInt(u) => json!({ "u": u }),
        MyValue::Float(f) => json!({ "f": f }),
        MyValue::Double(d) => json!({ "d": d }),
        MyValue::Date(y, mo, d, h, mi, s, us) => json!({ "date": [y, mo, d, h, mi, s, us] }),
        MyValue::Time(neg, d, h, mi, s, us) => json!({ "time": [neg, d, h, mi, s, us] }),
    }
}

fn params_from_json(values: &J) -> Result<Vec<MyValue>, MySqlError> {
    let bad = || protocol("reading a snapshot cursor", format!("not a key: {values}"));
    let array = values.as_array().ok_or_else(bad)?;
    array.iter().map(|v| value_from_json(v).ok_or_else(bad)).collect()
}

fn value_from_json(v: &J) -> Option<MyValue> {
    if v.is_null() {
        return Some(MyValue::NULL);
    }
    let (tag, inner) = v.as_object()?.iter().next()?;
    let n = |i: usize| inner.get(i).and_then(J::as_u64);
    Some(match tag.as_str() {
        "b" => MyValue::Bytes(unhex(inner.as_str()?)?),
        "i" => MyValue::Int(inner.as_i64()?),
        "u" => MyValue::UInt(inner.as_u64()?),
        "f" => MyValue::Float(inner.as_f64()? as f32),
        "d" => MyValue::Double(inner.as_f64()?),
        "date" => {
            MyValue::Date(n(0)? as u16, n(1)? as u8, n(2)? as u8, n(3)? as u8, n(4)? as u8, n(5)? as u8, n(6)? as u32)
        }
        "time" => {
            MyValue::Time(inner.get(0)?.as_bool()?, n(1)? as u32, n(2)? as u8, n(3)? as u8, n(4)? as u8, n(5)? as u32)
        }
        _ => return None,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_values_survive_their_json_form() {
        let values = vec![
            MyValue::Bytes(b"a\x00\xffz".to_vec()),
            MyValue::Int(-42),
            MyValue::UInt(u64::MAX),
            MyValue::Double(1.5),
            MyValue::Date(2026, 12, 3, 10, 11, 12, 999_999),
            MyValue::Time(true, 3, 4, 5, 6, 7),
        ];
        let state = lane_state(Some(&values), None);
        assert!(state["until"].is_null());
        assert_eq!(params_from_json(&state["after"]).unwrap(), values);
        assert!(params_from_json(&json!([{"b": "abc"}])).is_err());
    }
}
