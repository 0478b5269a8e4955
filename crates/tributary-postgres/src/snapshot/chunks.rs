//! Chunked reads for the initial copy of tables with a primary key
//! (docs/snapshots.md): each chunk is one `SELECT ... WHERE (key) > (last)
//! [AND (key) <= (lane end)] ORDER BY key LIMIT n` in its own short
//! statement, so no transaction stays open while a big table is copied
//! (a long one holds back vacuum on the whole server). The copy is made
//! exact by streaming from the replication slot's consistent point, which
//! every later read sees, and matching replayed inserts by key until the
//! WAL position read after the last chunk.
//!
//! A table is split into lanes (key ranges between sampled keys) that
//! several connections read at once. A lane's state is JSON (the text form
//! of the last key read and of the lane's end), stored in the Delta commits
//! so that a restart continues where the copy stopped.

use serde_json::{json, Value as J};
use tokio_postgres::types::ToSql;
use tokio_postgres::Client;
use tributary_core::{Lsn, Row, TableSchema};

use super::{parse_rows, text_select_list};
use crate::config::PostgresSourceConfig;
use crate::connect::{connect, qualified, quote_ident};
use crate::error::PostgresError;

/// Session settings every chunk read runs with (the preflight's requirements
/// of the pipeline's sessions), so dates and floats print as in the stream.
const SESSION_SETTINGS: &str = "SET DateStyle = 'ISO, MDY'; SET extra_float_digits = 1";

/// One connection reading chunks of any table.
pub struct ChunkReader {
    client: Client,
    chunk_rows: u64,
}

impl ChunkReader {
    /// Connects a session for chunk reads.
    pub async fn connect(cfg: &PostgresSourceConfig) -> Result<Self, PostgresError> {
        let client = connect(cfg).await?;
        client
            .batch_execute(SESSION_SETTINGS)
            .await
            .map_err(|e| PostgresError::query("prepare a snapshot session", e))?;
        Ok(ChunkReader { client, chunk_rows: cfg.snapshot_chunk_rows })
    }

    /// The current WAL insert position (the catch-up bound after a table's last chunk).
    pub async fn wal_position(&self) -> Result<Lsn, PostgresError> {
        crate::stream::current_wal_insert_lsn(&self.client).await
    }

    /// The planner's row estimate of `table` (for the progress bar and the split).
    /// A table never analyzed has no estimate: it is counted.
    pub async fn estimate_rows(&mut self, table: &TableSchema) -> Result<u64, PostgresError> {
        let estimate = super::estimate_rows(&self.client, table).await?;
        if estimate > 0 {
            return Ok(estimate);
        }
        let sql = format!("SELECT count(*) FROM {}", qualified(&table.id));
        let row = self
            .client
            .query_one(&sql, &[])
            .await
            .map_err(|e| PostgresError::query(format!("count the rows of {}", table.id), e))?;
        Ok(row.get::<_, i64>(0) as u64)
    }

    /// Splits `table` into at most `lanes` key ranges of about equal rows
    /// (`estimate` in total) by reading the key at evenly spaced offsets.
    /// Returns each lane's initial state.
    pub async fn split(&mut self, table: &TableSchema, lanes: usize, estimate: u64) -> Result<Vec<J>, PostgresError> {
        let keys = key_columns(table);
        let mut bounds: Vec<Vec<String>> = Vec::new();
        let lanes = lanes.max(1) as u64;
        for i in 1..lanes {
            let offset = estimate * i / lanes;
            let texts: Vec<String> = keys.iter().map(|k| format!("concat({k})")).collect();
            let sql = format!(
                "SELECT {} FROM {} AS src ORDER BY {} LIMIT 1 OFFSET {offset}",
                texts.join(", "),
                qualified(&table.id),
                keys.join(", ")
            );
            let row = self
                .client
                .query_opt(&sql, &[])
                .await
                .map_err(|e| PostgresError::query(format!("sample the keys of {}", table.id), e))?;
            let Some(row) = row else { break };
            let key: Vec<String> = (0..keys.len()).map(|i| row.get::<_, String>(i)).collect();
            if bounds.last() != Some(&key) {
                bounds.push(key);
            }
        }
        let mut states = Vec::with_capacity(bounds.len() + 1);
        let mut after: Option<Vec<String>> = None;
        for bound in bounds.into_iter().map(Some).chain([None]) {
            states.push(json!({ "after": after, "until": bound }));
            after = bound;
        }
        Ok(states)
    }

    /// Reads the next chunk of the lane `state`: its rows and the lane's next
    /// state, `None` once the lane is read to its end.
    pub async fn read(&mut self, table: &TableSchema, state: &J) -> Result<(Vec<Row>, Option<J>), PostgresError> {
        let keys = key_columns(table);
        let texts = |field: &str| -> Option<Vec<String>> { serde_json::from_value(state.get(field)?.clone()).ok()? };
        let (after, until) = (texts("after"), texts("until"));
        let mut params: Vec<String> = Vec::new();
        let mut conditions = Vec::new();
        let tuple = |params: &mut Vec<String>, values: &[String]| -> String {
            let placeholders: Vec<String> = values
                .iter()
                .zip(&table.primary_key)
                .map(|(value, &i)| {
                    params.push(value.clone());
                    format!("${}::text::{}", params.len(), table.columns[i].source_type)
                })
                .collect();
            format!("({})", placeholders.join(", "))
        };
        if let Some(after) = &after {
            conditions.push(format!("({}) > {}", keys.join(", "), tuple(&mut params, after)));
        }
        if let Some(until) = &until {
            conditions.push(format!("({}) <= {}", keys.join(", "), tuple(&mut params, until)));
        }
        let mut sql = format!("SELECT {} FROM {} AS src", text_select_list(table), qualified(&table.id));
        if !conditions.is_empty() {
            sql.push_str(&format!(" WHERE {}", conditions.join(" AND ")));
        }
        sql.push_str(&format!(" ORDER BY {} LIMIT {}", keys.join(", "), self.chunk_rows));
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|s| s as &(dyn ToSql + Sync)).collect();
        let rows = self.client.query(&sql, &refs).await.map_err(|e| PostgresError::Snapshot {
            table: table.id.to_string(),
            problem: crate::error::one_line(&e),
        })?;
        let done = (rows.len() as u64) < self.chunk_rows;
        let next = match rows.last() {
            Some(last) if !done => {
                let key: Vec<String> = table.primary_key.iter().map(|&i| last.get::<_, String>(i)).collect();
                Some(json!({ "after": key, "until": until }))
            }
            _ => None,
        };
        Ok((parse_rows(table, &rows)?, next))
    }
}

/// The key columns, qualified: a bare name in ORDER BY would mean the output
/// column of that name (its text form), ordering "10" before "9".
fn key_columns(table: &TableSchema) -> Vec<String> {
    table.primary_key.iter().map(|&i| format!("src.{}", quote_ident(&table.columns[i].name))).collect()
}
