//! The initial copy: reads tables inside the slot's exported snapshot (a
//! REPEATABLE READ transaction), in primary-key order, one keyset chunk at a
//! time; tables without a key are read through a cursor. Values are read in
//! their text form and typed by the same parser as the stream, so a row
//! looks the same whether it came from the copy or from the WAL.
//!
//! `tributary validate` reads the same way from a fresh REPEATABLE READ READ
//! ONLY transaction of its own ([`SnapshotReader::open_fresh`]): one
//! consistent view of the source, without a replication slot.

use crate::config::PostgresSourceConfig;
use crate::connect::{connect, qualified, quote_ident};
use crate::error::PostgresError;
use crate::stream::ExportedSnapshot;
use crate::text_value::parse_text;
use std::collections::HashMap;

pub mod chunks;
use tokio_postgres::types::ToSql;
use tokio_postgres::Client;
use tributary_core::{Lsn, Row, TableId, TableSchema, Value};

/// Session settings of a fresh transaction ([`SnapshotReader::open_fresh`]):
/// those the preflight requires of the pipeline's sessions, so a role's
/// other defaults cannot change how dates and floats print. Nothing else is
/// set: text-mirrored values (e.g. `interval`) print as in the pipeline's
/// sessions, with the role's defaults.
const TEXT_FORM_SETTINGS: &str = "SET LOCAL DateStyle = 'ISO, MDY'; SET LOCAL extra_float_digits = 1";

/// Reads tables as of one consistent snapshot: the slot's exported snapshot
/// ([`SnapshotReader::open`]) or a fresh transaction ([`SnapshotReader::open_fresh`]).
pub struct SnapshotReader {
    client: Client,
    /// The exported snapshot's LSN; `None` for a fresh transaction.
    lsn: Option<Lsn>,
    chunk_rows: u64,
    /// Per table: the text of the key columns of the last row read, or
    /// `Some(None)` once the table is exhausted.
    progress: HashMap<TableId, Progress>,
}

#[derive(Debug, Clone)]
enum Progress {
    After(Vec<String>),
    CursorOpen,
    Done,
}

impl SnapshotReader {
    /// Opens a transaction that sees exactly what `snapshot` saw.
    pub async fn open(cfg: &PostgresSourceConfig, snapshot: &ExportedSnapshot) -> Result<Self, PostgresError> {
        let client = connect(cfg).await?;
        let sql = format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT '{}'",
            snapshot.name.replace('\'', "''")
        );
        client.batch_execute(&sql).await.map_err(|e| PostgresError::query("import the slot's exported snapshot", e))?;
        Ok(SnapshotReader {
            client,
            lsn: Some(snapshot.lsn),
            chunk_rows: cfg.snapshot_chunk_rows,
            progress: HashMap::new(),
        })
    }

    /// Opens a fresh REPEATABLE READ READ ONLY transaction, without an
    /// exported snapshot or a replication slot: every read through this reader
    /// (and through [`SnapshotReader::client`]) sees the source as of the
    /// transaction's first query. Dates print in ISO form and floats exactly,
    /// whatever the role's settings (the preflight's requirements).
    pub async fn open_fresh(cfg: &PostgresSourceConfig) -> Result<Self, PostgresError> {
        let client = connect(cfg).await?;
        let sql = format!("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; {TEXT_FORM_SETTINGS}");
        client.batch_execute(&sql).await.map_err(|e| PostgresError::query("begin a read-only transaction", e))?;
        Ok(SnapshotReader { client, lsn: None, chunk_rows: cfg.snapshot_chunk_rows, progress: HashMap::new() })
    }

    /// The LSN the snapshot is consistent at: streaming continues after it.
    /// A fresh transaction ([`SnapshotReader::open_fresh`]) has none: `Lsn(0)`.
    pub fn lsn(&self) -> Lsn {
        self.lsn.unwrap_or(Lsn(0))
    }

    /// The session of the snapshot transaction, e.g. to read the catalog as
    /// of the same snapshot ([`crate::schema_loader::load_tables`]).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The planner's row estimate, for the progress bar.
    pub async fn estimate_rows(&mut self, table: &TableSchema) -> Result<u64, PostgresError> {
        estimate_rows(&self.client, table).await
    }

    /// The next chunk of `table`, or `None` when it has been read to the end.
    pub async fn next_chunk(&mut self, table: &TableSchema) -> Result<Option<Vec<Row>>, PostgresError> {
        let state = self.progress.get(&table.id).cloned();
        if matches!(state, Some(Progress::Done)) {
            return Ok(None);
        }
        let select = text_select_list(table);
        let snapshot_error = |e: tokio_postgres::Error| PostgresError::Snapshot {
            table: table.id.to_string(),
            problem: crate::error::one_line(&e),
        };
        let rows = if table.has_primary_key() {
            // Qualified key columns: a bare name in ORDER BY would mean the
            // output column of that name, i.e. the text form, ordering
            // "10" before "9" while the WHERE compares typed values.
            let key: Vec<String> =
                table.primary_key.iter().map(|&i| format!("src.{}", quote_ident(&table.columns[i].name))).collect();
            let mut sql = format!("SELECT {select} FROM {} AS src", qualified(&table.id));
            let last = match &state {
                Some(Progress::After(last)) => last.clone(),
                _ => Vec::new(),
            };
            if !last.is_empty() {
                let params: Vec<String> = table
                    .primary_key
                    .iter()
                    .enumerate()
                    .map(|(n, &i)| format!("${}::text::{}", n + 1, table.columns[i].source_type))
                    .collect();
                sql.push_str(&format!(" WHERE ({}) > ({})", key.join(", "), params.join(", ")));
            }
            sql.push_str(&format!(" ORDER BY {} LIMIT {}", key.join(", "), self.chunk_rows));
            let params: Vec<&(dyn ToSql + Sync)> = last.iter().map(|s| s as &(dyn ToSql + Sync)).collect();
            self.client.query(&sql, &params).await.map_err(snapshot_error)?
        } else {
            let cursor = cursor_name(&table.id);
            if state.is_none() {
                let sql =
                    format!("DECLARE {cursor} NO SCROLL CURSOR FOR SELECT {select} FROM {}", qualified(&table.id));
                self.client.batch_execute(&sql).await.map_err(snapshot_error)?;
            }
            self.client.query(&format!("FETCH {} FROM {cursor}", self.chunk_rows), &[]).await.map_err(snapshot_error)?
        };
        if rows.is_empty() {
            self.progress.insert(table.id.clone(), Progress::Done);
            return Ok(None);
        }
        let out = parse_rows(table, &rows)?;
        let next = if table.has_primary_key() {
            let last = rows.last().expect("not empty");
            Progress::After(table.primary_key.iter().map(|&i| last.get::<_, String>(i)).collect())
        } else {
            Progress::CursorOpen
        };
        let exhausted = (rows.len() as u64) < self.chunk_rows;
        self.progress.insert(table.id.clone(), if exhausted { Progress::Done } else { next });
        Ok(Some(out))
    }

    /// Ends the snapshot transaction.
    pub async fn finish(self) -> Result<(), PostgresError> {
        self.client.batch_execute("COMMIT").await.map_err(|e| PostgresError::query("end the snapshot transaction", e))
    }
}

/// The planner's row estimate of `table`.
pub(crate) async fn estimate_rows(client: &Client, table: &TableSchema) -> Result<u64, PostgresError> {
    let row = client
        .query_one(
            "SELECT GREATEST(reltuples, 0)::bigint FROM pg_class WHERE oid = $1::text::regclass",
            &[&qualified(&table.id)],
        )
        .await
        .map_err(|e| PostgresError::query(format!("estimate the rows of {}", table.id), e))?;
    Ok(row.get::<_, i64>(0) as u64)
}

/// Every column in its text form, as pgoutput sends it: concat() prints with
/// the type's output function (a ::text cast would differ: char(n) loses its
/// padding, inet gains a /32); num_nulls: a composite of NULLs is not itself NULL.
pub(crate) fn text_select_list(table: &TableSchema) -> String {
    table
        .columns
        .iter()
        .map(|c| format!("CASE WHEN num_nulls({0}) = 0 THEN concat({0}) END", quote_ident(&c.name)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Rows read with [`text_select_list`], typed by the stream's parser.
pub(crate) fn parse_rows(table: &TableSchema, rows: &[tokio_postgres::Row]) -> Result<Vec<Row>, PostgresError> {
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let mut values: Row = Vec::with_capacity(table.columns.len());
        for (i, column) in table.columns.iter().enumerate() {
            let text: Option<&str> = row.get(i);
            values.push(match text {
                None => Value::Null,
                Some(text) => parse_text(&column.data_type, text).map_err(|e| PostgresError::Snapshot {
                    table: table.id.to_string(),
                    problem: format!("column {}: {e}", column.name),
                })?,
            });
        }
        out.push(values);
    }
    Ok(out)
}

fn cursor_name(table: &TableId) -> String {
    let sanitized: String = format!("{}_{}", table.schema, table.name)
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    quote_ident(&format!("tributary_{sanitized}"))
}
