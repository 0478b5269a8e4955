//! The chunked initial snapshot (docs/snapshots.md): tables with a primary
//! key are split into key ranges ("lanes") that `snapshot_parallelism`
//! connections read chunk by chunk, each chunk one short read of its own
//! (no global lock, no long transaction). Chunks are written to Delta as
//! they arrive; every commit of snapshot rows records each lane's progress
//! ([`SnapshotProgress`]), so after a crash the copy continues from the last
//! committed chunk instead of from zero.
//!
//! The copy is made exact by the stream: every table starts streaming at the
//! position read before its first chunk, and until a position read after
//! its last chunk (the catch-up bound) replayed inserts are matched by key,
//! so a change the copy already saw is applied again as the same final row,
//! never as a second one. The sources provide the reads ([`ChunkSource`]).

use super::snapshot::{now_micros, progress_style};
use super::writers::TableWriters;
use crate::metrics::registry::ErrorKind;
use anyhow::Context;
use indicatif::{MultiProgress, ProgressBar};
use serde_json::{json, Value as J};
use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tributary_core::{Row, SourcePosition, TableSchema, Value};
use tributary_delta::SnapshotProgress;

/// A table is split into lanes only when it holds at least this many chunks.
const CHUNKS_PER_LANE: u64 = 4;

/// One connection reading chunks of tables with a primary key.
pub trait ChunkSource: Send + 'static {
    /// A row estimate, for the progress bar and the split.
    fn estimate_rows(&mut self, table: &TableSchema) -> impl Future<Output = anyhow::Result<u64>> + Send;
    /// At most `lanes` key ranges of `table` (of `estimate` rows), as lane states.
    fn split(
        &mut self,
        table: &TableSchema,
        lanes: usize,
        estimate: u64,
    ) -> impl Future<Output = anyhow::Result<Vec<J>>> + Send;
    /// The next chunk of a lane and the lane's next state (`None`: the lane is done).
    fn read(
        &mut self,
        table: &TableSchema,
        lane: &J,
    ) -> impl Future<Output = anyhow::Result<(Vec<Row>, Option<J>)>> + Send;
}

impl ChunkSource for tributary_mysql::snapshot::chunks::ChunkReader {
    async fn estimate_rows(&mut self, table: &TableSchema) -> anyhow::Result<u64> {
        Ok(tributary_mysql::snapshot::chunks::ChunkReader::estimate_rows(self, table).await?)
    }
    async fn split(&mut self, table: &TableSchema, lanes: usize, estimate: u64) -> anyhow::Result<Vec<J>> {
        Ok(tributary_mysql::snapshot::chunks::ChunkReader::split(self, table, lanes, estimate).await?)
    }
    async fn read(&mut self, table: &TableSchema, lane: &J) -> anyhow::Result<(Vec<Row>, Option<J>)> {
        Ok(tributary_mysql::snapshot::chunks::ChunkReader::read(self, table, lane).await?)
    }
}

impl ChunkSource for tributary_postgres::snapshot::chunks::ChunkReader {
    async fn estimate_rows(&mut self, table: &TableSchema) -> anyhow::Result<u64> {
        Ok(tributary_postgres::snapshot::chunks::ChunkReader::estimate_rows(self, table).await?)
    }
    async fn split(&mut self, table: &TableSchema, lanes: usize, estimate: u64) -> anyhow::Result<Vec<J>> {
        Ok(tributary_postgres::snapshot::chunks::ChunkReader::split(self, table, lanes, estimate).await?)
    }
    async fn read(&mut self, table: &TableSchema, lane: &J) -> anyhow::Result<(Vec<Row>, Option<J>)> {
        Ok(tributary_postgres::snapshot::chunks::ChunkReader::read(self, table, lane).await?)
    }
}

/// How a chunked copy runs.
pub struct ChunkedCopy {
    /// Where streaming continues for tables whose copy starts now (read
    /// before any chunk); `None` when every table continues a copy.
    pub start: Option<SourcePosition>,
    /// Connections reading at once.
    pub parallelism: usize,
    /// Rows per chunk (to decide whether a table is worth splitting).
    pub chunk_rows: u64,
    /// True for a re-copy of streamed tables (`tributary resnapshot`): a
    /// table starting its copy first has its rows removed
    /// ([`tributary_delta::TableWriter::begin_recopy`]).
    pub recopy: bool,
}

/// One table's copy.
struct TableCopy {
    schema: Arc<TableSchema>,
    start: SourcePosition,
    /// Each lane's state; `None` once read to its end.
    lanes: Vec<Option<J>>,
    rows: u64,
    bar: ProgressBar,
    started: Instant,
}

impl TableCopy {
    fn progress(&self) -> SnapshotProgress {
        SnapshotProgress { start: self.start.clone(), cursor: json!({ "lanes": self.lanes }) }
    }

    fn read_to_end(&self) -> bool {
        self.lanes.iter().all(Option::is_none)
    }
}

/// A chunk read by a worker.
pub struct Chunk {
    table: usize,
    lane: usize,
    rows: Vec<Row>,
    next: Option<J>,
}

/// Copies `tables` (all with a primary key) with `readers` (one per
/// connection, at least one), continuing each table's recorded progress.
/// `catch_up` reads the source's current position (after a table's last
/// chunk). Tables with progress keep their own start position.
pub async fn copy_chunked<S, P, PF>(
    readers: Vec<S>,
    catch_up: P,
    copy: ChunkedCopy,
    writers: &mut TableWriters,
    tables: &[Arc<TableSchema>],
) -> anyhow::Result<()>
where
    S: ChunkSource,
    P: Fn() -> PF,
    PF: Future<Output = anyhow::Result<SourcePosition>>,
{
    let mut run = CopyRun::start(readers, copy, writers, tables).await?;
    for table in run.read_to_end() {
        // Every chunk was committed before a crash.
        let until = catch_up().await.context("read the source position after the copy")?;
        run.finish_table(table, writers, &until).await?;
    }
    while let Some(chunk) = run.next_chunk().await {
        if let Some(table) = run.write(chunk?, writers).await? {
            let until = catch_up().await.context("read the source position after the copy")?;
            run.finish_table(table, writers, &until).await?;
        }
    }
    run.end().await
}

/// A chunked copy under way: reader tasks send chunks ([`CopyRun::next_chunk`]),
/// the owner of the writers writes them ([`CopyRun::write`]) and ends each
/// table read to its end ([`CopyRun::finish_table`]). The initial snapshot
/// drives it to the end before streaming ([`copy_chunked`]); a re-copy
/// while streaming drives it between batches (`super::recopy`).
pub struct CopyRun {
    copies: Vec<TableCopy>,
    chunks: mpsc::Receiver<anyhow::Result<Chunk>>,
    workers: JoinSet<()>,
    overall: ProgressBar,
    /// `_tributary_commit_ts` of the copied rows: when the copy started.
    commit_ts: i64,
    metrics: crate::metrics::Metrics,
}

impl CopyRun {
    /// Plans each table's lanes (or takes them from its recorded progress)
    /// and starts one reader task per connection.
    pub async fn start<S: ChunkSource>(
        mut readers: Vec<S>,
        copy: ChunkedCopy,
        writers: &mut TableWriters,
        tables: &[Arc<TableSchema>],
    ) -> anyhow::Result<CopyRun> {
        let metrics = writers.metrics().clone();
        let commit_ts = now_micros();
        let bars = MultiProgress::new();
        let overall = bars.add(ProgressBar::new(0));
        overall.set_style(progress_style());
        overall.set_message("snapshot (all tables)");
        let first = readers.first_mut().context("a chunked copy needs a connection")?;
        let mut copies: Vec<TableCopy> = Vec::with_capacity(tables.len());
        for schema in tables {
            let writer = writers.get_mut(&schema.id).expect("a writer for every table");
            // A NOT NULL column the source dropped (before a restart that continues
            // the copy) is NULL in the rows read from now on: the table must allow it.
            let dropped: Vec<String> = writer
                .source_schema()
                .columns
                .iter()
                .filter(|c| !c.nullable && schema.column_index(&c.name).is_none())
                .map(|c| c.name.clone())
                .collect();
            if !dropped.is_empty() {
                let names: Vec<&str> = dropped.iter().map(String::as_str).collect();
                writer.relax_not_null(&names).await?;
            }
            let estimate = first.estimate_rows(schema).await?;
            let (start, lanes, rows) = match writer.snapshot_progress().cloned() {
                Some(progress) => {
                    let lanes: Vec<Option<J>> = progress.cursor["lanes"]
                        .as_array()
                        .map(|lanes| lanes.iter().map(|l| Some(l.clone()).filter(|l| !l.is_null())).collect())
                        .unwrap_or_default();
                    let done = writer.stored_rows();
                    tracing::info!(table = %schema.id, rows_already_copied = done, lanes_left = lanes.iter().flatten().count(),
                        start = %progress.start, "snapshot continues from its last committed chunk");
                    (progress.start, lanes, done)
                }
                None => {
                    let start = copy.start.clone().context("a start position for a table copied from its first row")?;
                    let splits = if estimate >= CHUNKS_PER_LANE * copy.chunk_rows { copy.parallelism } else { 1 };
                    let lanes: Vec<Option<J>> =
                        first.split(schema, splits, estimate).await?.into_iter().map(Some).collect();
                    if copy.recopy {
                        let progress = SnapshotProgress { start: start.clone(), cursor: json!({ "lanes": lanes }) };
                        let writer = writers.get_mut(&schema.id).expect("a writer for every table");
                        let removed = writer.begin_recopy(&progress).await?;
                        tracing::info!(table = %schema.id, rows_removed = removed.rows_deleted, %start,
                            "re-copy started: the table's rows were removed; the copy follows");
                    }
                    (start, lanes, 0)
                }
            };
            metrics.snapshot_started(&schema.id, estimate);
            let bar = bars.add(ProgressBar::new(estimate.max(rows)));
            bar.set_style(progress_style());
            bar.set_message(schema.id.to_string());
            bar.set_position(rows);
            overall.inc_length(estimate.max(rows));
            overall.inc(rows);
            copies.push(TableCopy { schema: schema.clone(), start, lanes, rows, bar, started: Instant::now() });
        }
        tracing::info!(tables = copies.len(), connections = readers.len(), "chunked snapshot started");

        let queue: VecDeque<(usize, usize, J)> = copies
            .iter()
            .enumerate()
            .flat_map(|(t, c)| c.lanes.iter().enumerate().filter_map(move |(l, s)| Some((t, l, s.clone()?))))
            .collect();
        let queue = Arc::new(Mutex::new(queue));
        let schemas: Arc<Vec<Arc<TableSchema>>> = Arc::new(copies.iter().map(|c| c.schema.clone()).collect());
        let (tx, chunks) = mpsc::channel::<anyhow::Result<Chunk>>(readers.len());
        let mut workers = JoinSet::new();
        for reader in readers {
            workers.spawn(read_lanes(reader, queue.clone(), schemas.clone(), tx.clone()));
        }
        Ok(CopyRun { copies, chunks, workers, overall, commit_ts, metrics })
    }

    /// The tables whose every chunk is already committed (a crash came
    /// between the last chunk and the end of the copy): end them first.
    pub fn read_to_end(&self) -> Vec<usize> {
        (0..self.copies.len()).filter(|&t| self.copies[t].read_to_end()).collect()
    }

    /// The next chunk a reader read (a failed read is counted as a snapshot
    /// error); `None` once every lane is read.
    pub async fn next_chunk(&mut self) -> Option<anyhow::Result<Chunk>> {
        let next = self.chunks.recv().await;
        if let Some(Err(_)) = &next {
            self.metrics.error(ErrorKind::snapshot);
        }
        next
    }

    /// Writes a chunk (committed with the progress it completes once its
    /// file is full); returns its table when that table is now read to its end.
    pub async fn write(&mut self, chunk: Chunk, writers: &mut TableWriters) -> anyhow::Result<Option<usize>> {
        let metrics = &self.metrics;
        let copy = &mut self.copies[chunk.table];
        copy.lanes[chunk.lane] = chunk.next;
        let count = chunk.rows.len() as u64;
        let commit_started = Instant::now();
        let writer = writers.get_mut(&copy.schema.id).expect("a writer for every table");
        let rows = in_table_order(chunk.rows, &copy.schema, &writer.source_schema());
        let stats = writer.append_snapshot_rows(rows, self.commit_ts, &copy.progress()).await;
        let stats = stats.inspect_err(|_| metrics.error(ErrorKind::sink))?;
        writers.report_commit(&copy.schema.id, &stats, commit_started);
        metrics.snapshot_rows(&copy.schema.id, count);
        copy.rows += count;
        copy.bar.set_position(copy.rows);
        self.overall.inc(count);
        Ok(copy.read_to_end().then_some(chunk.table))
    }

    /// Commits the end of a table's copy with its catch-up bound `until`
    /// (a source position read after its last chunk).
    pub async fn finish_table(
        &mut self,
        table: usize,
        writers: &mut TableWriters,
        until: &SourcePosition,
    ) -> anyhow::Result<()> {
        let copy = &mut self.copies[table];
        let writer = writers.get_mut(&copy.schema.id).expect("a writer for every table");
        let commit_started = Instant::now();
        let stats = writer.finish_chunked_snapshot(self.commit_ts, &copy.progress(), until).await?;
        writers.report_commit(&copy.schema.id, &stats, commit_started);
        copy.bar.finish_and_clear();
        let secs = copy.started.elapsed().as_secs_f64();
        tracing::info!(
            table = %copy.schema.id,
            rows = copy.rows,
            seconds = format!("{secs:.1}"),
            start = %copy.start,
            catch_up_until = %until,
            "snapshot of table done"
        );
        Ok(())
    }

    /// Waits for the reader tasks (after the last chunk).
    pub async fn end(mut self) -> anyhow::Result<()> {
        while let Some(joined) = self.workers.join_next().await {
            joined.context("a snapshot reader task failed")?;
        }
        self.overall.finish_and_clear();
        Ok(())
    }
}

/// `rows` read with the columns of `read` (the catalog's when the copy
/// started or continued), in the order of `table`'s columns (those the Delta
/// table follows), matched by name: a column `read` lacks (dropped at the
/// source since the table last followed its schema) is NULL, one `table`
/// lacks (added since) is left out; the stream brings both changes at their
/// positions. Without this, a copy continued after a restart with a column
/// dropped in the middle shifted the next columns' values into its place.
fn in_table_order(rows: Vec<Row>, read: &TableSchema, table: &TableSchema) -> Vec<Row> {
    if read.columns.iter().map(|c| &c.name).eq(table.columns.iter().map(|c| &c.name)) {
        return rows;
    }
    let from: Vec<Option<usize>> = table.columns.iter().map(|c| read.column_index(&c.name)).collect();
    rows.into_iter()
        .map(|mut row| {
            from.iter().map(|i| i.map_or(Value::Null, |i| std::mem::replace(&mut row[i], Value::Null))).collect()
        })
        .collect()
}

/// A worker: takes a lane from the queue, reads its next chunk, hands it to
/// the writer, and puts the lane back (at the front, so the tables started
/// first finish first and few files are open at once) until the queue is empty.
async fn read_lanes<S: ChunkSource>(
    mut reader: S,
    queue: Arc<Mutex<VecDeque<(usize, usize, J)>>>,
    schemas: Arc<Vec<Arc<TableSchema>>>,
    tx: mpsc::Sender<anyhow::Result<Chunk>>,
) {
    loop {
        let next = queue.lock().expect("queue lock").pop_front();
        let Some((table, lane, state)) = next else { return };
        let schema = &schemas[table];
        match reader.read(schema, &state).await {
            Ok((rows, next)) => {
                let again = next.clone();
                if tx.send(Ok(Chunk { table, lane, rows, next })).await.is_err() {
                    return;
                }
                if let Some(state) = again {
                    queue.lock().expect("queue lock").push_front((table, lane, state));
                }
            }
            Err(e) => {
                let _ = tx.send(Err(e.context(format!("snapshot of {}", schema.id)))).await;
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tributary_core::{Column, ColumnType, TableId};

    fn schema(names: &[&str]) -> TableSchema {
        let column = |name: &&str| Column {
            name: name.to_string(),
            data_type: ColumnType::Int64,
            nullable: true,
            source_type: "bigint".into(),
            source_id: None,
        };
        TableSchema { id: TableId::new("db", "t"), columns: names.iter().map(column).collect(), primary_key: vec![0] }
    }

    #[test]
    fn copied_rows_are_put_in_the_delta_tables_column_order_by_name() {
        let row = |values: &[i64]| values.iter().map(|&v| Value::Int(v)).collect::<Row>();
        // Same columns: unchanged.
        let same = in_table_order(vec![row(&[1, 2, 3])], &schema(&["id", "v", "w"]), &schema(&["id", "v", "w"]));
        assert_eq!(same, vec![row(&[1, 2, 3])]);
        // `v` dropped and `x` added at the source since the table last followed it.
        let read = schema(&["id", "w", "x"]);
        let rows = in_table_order(vec![row(&[1, 3, 9]), row(&[2, 4, 9])], &read, &schema(&["id", "v", "w"]));
        assert_eq!(
            rows,
            vec![vec![Value::Int(1), Value::Null, Value::Int(3)], vec![Value::Int(2), Value::Null, Value::Int(4)]]
        );
    }
}
