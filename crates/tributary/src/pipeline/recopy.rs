//! `tributary resnapshot <table>`: copying one table again while every other
//! table keeps streaming (docs/snapshots.md, "Re-copying a table").
//!
//! The request reaches the running pipeline over its HTTP port
//! (`POST /resnapshot?table=`, see [`crate::metrics::server`]); the runner
//! starts a [`Recopy`] between batches. It reads a start position S0 the way
//! the initial chunked copy does (MariaDB / MySQL: [`chunks::copy_start_position`];
//! PostgreSQL: a temporary slot's consistent point), removes the table's rows
//! in one commit that records the copy's lanes, and reads chunks on
//! `snapshot_parallelism` connections of its own. The runner writes each
//! chunk between batches; meanwhile the table's streamed changes are dropped
//! (everything after S0 is read again) and the source is confirmed no
//! further than S0. When the last chunk is in, the table ends its copy with
//! the txn of S0 and a catch-up bound, and the runner restarts the stream
//! from the lowest committed position: S0 for this table, the other tables
//! skip what they hold by position. A crash in between leaves the copy's
//! progress in the table; the next start continues it the same way.

use super::chunked_snapshot::{Chunk, ChunkedCopy, CopyRun};
use super::reconnect;
use super::writers::TableWriters;
use crate::config::{PipelineConfig, SourceConfig};
use anyhow::{bail, Context};
use std::time::Duration;
use tokio::sync::oneshot;
use tributary_core::{ErrorClass, SourcePosition, TableId};

/// A request to copy a table again, with where to send the answer (one line).
pub struct RecopyRequest {
    /// `database.table` (PostgreSQL `schema.table`).
    pub table: String,
    pub reply: oneshot::Sender<Result<String, String>>,
}

/// Reads the source's current position: the catch-up bound after the last chunk.
enum CatchUp {
    Mysql(tributary_mysql::MySqlSourceConfig),
    Postgres(tributary_postgres::snapshot::chunks::ChunkReader),
}

impl CatchUp {
    async fn position(&self) -> anyhow::Result<SourcePosition> {
        Ok(match self {
            CatchUp::Mysql(source) => {
                SourcePosition::MySql(tributary_mysql::stream::current_server_position(source).await?)
            }
            CatchUp::Postgres(probe) => SourcePosition::Postgres { lsn: probe.wal_position().await? },
        })
    }
}

/// A re-copy of one table under way.
pub struct Recopy {
    table: TableId,
    run: CopyRun,
    catch_up: CatchUp,
    done: bool,
}

/// What [`Recopy::write`] did.
pub enum Written {
    /// More chunks follow.
    More,
    /// The copy is complete: the stream must restart from the lowest position.
    Done,
}

impl Recopy {
    /// Starts copying `table` again, or continues the re-copy it records
    /// (after a restart or a failed chunk read). The table's changes are
    /// held back from now on ([`TableWriters::hold_for_recopy`]).
    pub async fn start(config: &PipelineConfig, writers: &mut TableWriters, table: &TableId) -> anyhow::Result<Self> {
        let writer = writers.get_mut(table).with_context(|| format!("{table} is not a table of this pipeline"))?;
        let schema = writer.source_schema();
        if !schema.has_primary_key() {
            bail!(
                "{table} has no primary key: a table is copied again while streaming only in key chunks; \
                 stop the pipeline, move its Delta table directory aside and start it (docs/snapshots.md)"
            );
        }
        if writer.has_open_parts() {
            bail!("{table} holds part of a large source transaction; ask again when it is committed");
        }
        let continuing = writer.snapshot_progress().is_some();
        let one = std::slice::from_ref(&schema);
        let (run, catch_up) = match &config.source {
            SourceConfig::Mysql(source) => {
                use tributary_mysql::snapshot::chunks;
                let start = match continuing {
                    true => None,
                    false => Some(SourcePosition::MySql(chunks::copy_start_position(source).await?)),
                };
                let mut readers = Vec::with_capacity(source.snapshot_parallelism);
                for _ in 0..source.snapshot_parallelism {
                    readers.push(chunks::ChunkReader::connect(source).await.context("connect a snapshot reader")?);
                }
                let copy = recopy_plan(start, source.snapshot_parallelism, source.snapshot_chunk_rows);
                (CopyRun::start(readers, copy, writers, one).await?, CatchUp::Mysql(source.clone()))
            }
            SourceConfig::Postgres(source) => {
                use tributary_postgres::snapshot::chunks::ChunkReader;
                let start = match continuing {
                    true => None,
                    false => Some(postgres_start(source).await?),
                };
                let mut readers = Vec::with_capacity(source.snapshot_parallelism);
                for _ in 0..source.snapshot_parallelism {
                    readers.push(ChunkReader::connect(source).await.context("connect a snapshot reader")?);
                }
                let probe = ChunkReader::connect(source).await.context("connect a snapshot reader")?;
                let copy = recopy_plan(start, source.snapshot_parallelism, source.snapshot_chunk_rows);
                (CopyRun::start(readers, copy, writers, one).await?, CatchUp::Postgres(probe))
            }
        };
        writers.hold_for_recopy(table);
        let mut recopy = Recopy { table: table.clone(), run, catch_up, done: false };
        if !recopy.run.read_to_end().is_empty() {
            // Every chunk was committed before a restart: only the end is left.
            recopy.finish(writers).await?;
            recopy.done = true;
        }
        Ok(recopy)
    }

    /// The table being copied.
    pub fn table(&self) -> &TableId {
        &self.table
    }

    /// True when the copy ended in [`Recopy::start`] (nothing was left to read).
    pub fn done(&self) -> bool {
        self.done
    }

    /// The next chunk a reader read (pending forever once every lane is read).
    pub async fn next_chunk(&mut self) -> anyhow::Result<Chunk> {
        match self.run.next_chunk().await {
            Some(chunk) => chunk,
            None => std::future::pending().await,
        }
    }

    /// Writes a chunk; after the last one, ends the copy (txn of its start
    /// position and the catch-up bound). The table's changes stay held back
    /// until the runner has committed what it read so far and calls
    /// [`TableWriters::release_recopy`]: they are read again from the start.
    pub async fn write(&mut self, chunk: Chunk, writers: &mut TableWriters) -> anyhow::Result<Written> {
        if self.run.write(chunk, writers).await?.is_none() {
            return Ok(Written::More);
        }
        self.finish(writers).await?;
        Ok(Written::Done)
    }

    async fn finish(&mut self, writers: &mut TableWriters) -> anyhow::Result<()> {
        let until = self.catch_up.position().await.context("read the source position after the copy")?;
        self.run.finish_table(0, writers, &until).await?;
        tracing::info!(table = %self.table, catch_up_until = %until,
            "re-copy done: streaming restarts from the copy's start position for this table");
        Ok(())
    }

    /// Gives up this attempt after a failed chunk read: rows not committed
    /// yet are dropped; [`Recopy::start`] continues from the last committed chunk.
    pub fn abandon(self, writers: &mut TableWriters) {
        if let Some(writer) = writers.get_mut(&self.table) {
            writer.abandon_snapshot_rows();
        }
    }
}

/// How a re-copy's chunks are planned: from `start` (`None`: continue the
/// recorded progress), removing the table's rows before the first chunk.
fn recopy_plan(start: Option<SourcePosition>, parallelism: usize, chunk_rows: u64) -> ChunkedCopy {
    ChunkedCopy { start, parallelism, chunk_rows, recopy: true }
}

/// A transient failure of a chunk read is retried (the copy continues);
/// anything else stops the pipeline.
pub fn retry_after(error: &anyhow::Error) -> Option<Duration> {
    (reconnect::classify(error) == ErrorClass::Transient).then_some(Duration::from_secs(5))
}

/// PostgreSQL: the consistent point of a temporary slot (dropped at once):
/// every transaction committed before it is visible to the chunk reads that
/// follow, every later one is in the stream after it.
async fn postgres_start(source: &tributary_postgres::PostgresSourceConfig) -> anyhow::Result<SourcePosition> {
    let client = tributary_postgres::connect::connect(source).await?;
    let name = format!("{}_resnap_{}", source.slot, std::process::id());
    let session = tributary_postgres::stream::SlotSession::open(source, &client, &name, true).await?;
    let lsn = session.exported().context("a temporary slot exports a snapshot")?.lsn;
    drop(session);
    Ok(SourcePosition::Postgres { lsn })
}
