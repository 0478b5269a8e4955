//! Turns one batch of source changes into the files and actions of one Delta
//! commit.
//!
//! Tables with a primary key (upsert mirror): changes are replayed per key in
//! source order against the stored rows they touch. Only data files whose key
//! bounds can hold an updated / deleted key are searched (in parallel): their
//! key columns only, then the full rows of the keys found; a file that really
//! holds one is read whole by the writer threads (a remote one is fetched
//! whole once, when its keys are found, and kept for the rewrite while the
//! batch's kept files stay under [`FETCHED_BYTES_BUDGET`])
//! and replaced (Remove + Add) by files without those rows plus
//! their final after-images, split into pieces of at most `piece_rows` rows
//! along the old row order so key ranges stay tight and later changes rewrite
//! less. Rows of new keys go to new files (Add only, nothing rewritten).
//! Inserts are trusted to carry new keys (the source enforces the key), so
//! they never cause a read, except while a table catches up after a chunked
//! snapshot copy ([`Planner::inserts_may_exist`]). Whenever anything is removed or rewritten, a change-data file
//! holds exactly the batch's changes (`insert`, `update_preimage`,
//! `update_postimage`, `delete`) so readers never see untouched rows as
//! delete + insert.
//!
//! With deletion vectors (`update_mode = "deletion_vectors"`, or a table that
//! has them), a file holding touched keys is not rewritten: the rows holding
//! them are marked in the file's deletion vector (united with the one it had;
//! the commit replaces the file's `add` with one carrying the merged vector)
//! and the keys' final rows go to new files like rows of new keys. Every read
//! of a data file here skips the rows its vector deletes; row positions are
//! always positions in the physical file.
//!
//! Tables without a primary key (append-only changelog): every change is a new
//! row (after-image with op `c`/`u`, before-image with op `d`); nothing is ever
//! rewritten. TRUNCATE removes every file in both kinds of table; a batch
//! holding one is planned in segments ([`Planner::plan_in_segments`]) so
//! that the truncated rows' change data is streamed file by file, one read
//! batch at a time, never the whole table in memory.

use crate::commit::{add_action, cdc_action, remove_file_action, CommitMetrics};
use crate::deletion_vector::{Deleted, Placement};
use crate::encode::{decode_metas, decode_rows, encode, EncodeError, Op, OutRow, RowMeta};
use crate::files::{
    cdc_file_name, data_file_name, drop_deleted, read_file, read_part, write_file, FileEntry, FileError, FileIndex,
    WrittenFile,
};
use crate::int_lookup::IntLookup;
use crate::key::{key_of_row, Key, KeyLookup, KeyMap, KeyPart, KeyReader, KeySet};
use crate::schema::TableLayout;
use crate::transaction_parts::OpenParts;
use crate::writer::{SourcedChange, TableBatch};
use crate::DeltaError;
use deltalake::arrow::array::{BooleanArray, RecordBatch};
use deltalake::arrow::compute::{concat_batches, filter_record_batch};
use deltalake::arrow::datatypes::{Schema, SchemaRef};
use deltalake::kernel::Action;
use deltalake::table::state::DeltaTableState;
use roaring::RoaringTreemap;
use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tributary_core::{ColumnType, RowChange, SourcePosition, Value};

/// Remote files holding a looked-up key are kept in memory (as stored,
/// compressed) from the key search to their rewrite up to this many bytes
/// per batch: one GET each instead of two. Beyond it they are fetched again.
const FETCHED_BYTES_BUDGET: u64 = 64 * 1024 * 1024;

pub(crate) const INSERT: &str = "insert";
pub(crate) const UPDATE_PRE: &str = "update_preimage";
pub(crate) const UPDATE_POST: &str = "update_postimage";
pub(crate) const DELETE: &str = "delete";

/// The outcome of planning a batch: files already written, actions to commit.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    pub actions: Vec<Action>,
    pub added: Vec<(String, FileEntry)>,
    pub removed: Vec<String>,
    /// True when files are removed (the commit is not a blind append).
    pub rewrites: bool,
    pub metrics: CommitMetrics,
    /// Rows written with new content (inserts, after-images, changelog rows).
    pub rows_written: u64,
    /// Rows removed from the table (deletes, truncated rows).
    pub rows_deleted: u64,
    /// Unchanged rows copied from rewritten files into their replacements.
    pub rows_copied: u64,
    /// Deletes / updates of keys the table does not hold.
    pub missing_keys: u64,
    /// Every file this plan wrote (deleted again if the commit certainly failed).
    pub written: Vec<String>,
    /// Data files read to look up stored rows: the plan is only valid while
    /// they are active (see [`crate::conflict`]).
    pub read: Vec<String>,
    /// True when the plan looked up stored rows by key.
    pub reads_keys: bool,
    /// True when the plan covers every data file (TRUNCATE, reset, a schema rewrite).
    pub whole_table: bool,
}

/// Plans batches for one table.
#[derive(Clone, Copy)]
pub(crate) struct Planner<'a> {
    pub layout: &'a TableLayout,
    pub table_dir: &'a Path,
    /// Where the table's files are read and written.
    pub files: &'a crate::storage::TableFiles,
    pub index: &'a FileIndex,
    /// Largest number of rows in one file written by a rewrite.
    pub piece_rows: usize,
    /// Mark superseded rows in deletion vectors instead of rewriting files.
    pub deletion_vectors: bool,
    /// Look inserted keys up like updated ones: right after a chunked
    /// snapshot, a streamed insert may be of a row the copy already read
    /// (docs/snapshots.md), and must replace it, not add a second one.
    pub inserts_may_exist: bool,
    /// Set when planning one part of a commit made of parts (see
    /// [`crate::transaction_parts`]): the earlier parts, whose data files
    /// are in `index` but not in the table state. Every part then writes
    /// change data, inserts too: a commit with change-data files shows
    /// readers only those.
    pub uncommitted: Option<&'a crate::transaction_parts::OpenParts>,
}

/// Metadata for rows of one source transaction, built once per position.
struct MetaCache<'b> {
    last: Option<(&'b SourcePosition, Arc<str>, i64)>,
}

impl<'b> MetaCache<'b> {
    fn meta(&mut self, table: &Path, sc: &'b SourcedChange, op: Op) -> Result<RowMeta, DeltaError> {
        let hit = matches!(&self.last, Some((p, _, _)) if std::ptr::eq(*p, &sc.position) || **p == sc.position);
        if !hit {
            let version = sc.position.to_version().map_err(|source| DeltaError::Position {
                table: table.to_path_buf(),
                position: sc.position.to_string(),
                source,
            })?;
            self.last = Some((&sc.position, Arc::from(sc.position.to_string()), version));
        }
        let (_, text, version) = self.last.as_ref().expect("set above");
        Ok(RowMeta {
            op: Some(op),
            position: Some(text.clone()),
            source_version: Some(*version),
            commit_ts: Some(sc.commit_ts),
            change_seq: Some(sc.change_seq),
        })
    }
}

/// The values of a single 64-bit integer key column without NULLs (the
/// common primary key), for probing without building [`Key`]s.
fn int_key_column(columns: &[deltalake::arrow::array::ArrayRef]) -> Option<&[i64]> {
    use deltalake::arrow::array::{Array, AsArray};
    match columns {
        [column] if column.null_count() == 0 => {
            column.as_primitive_opt::<deltalake::arrow::datatypes::Int64Type>().map(|a| a.values().as_ref())
        }
        _ => None,
    }
}

/// Appends to `hits` each live row of `keys` (one batch of a data file's key
/// columns, its first row being row `first_row` of the file) that holds a
/// looked-up key, with the file's row number. A single integer key column
/// is searched without building [`Key`]s: each wanted key binary-searched
/// when the batch is in key order (files Tributary writes, a snapshot copied
/// by one connection), else each value tested (a snapshot copied by several
/// connections, whose chunks interleave).
fn find_hits(
    keys: &RecordBatch,
    first_row: usize,
    ints: Option<&IntLookup>,
    lookup: &KeySet,
    live: impl Fn(usize) -> bool,
    hits: &mut Vec<(Key, usize)>,
) {
    match int_key_column(keys.columns()).zip(ints) {
        Some((values, wanted)) if !values.is_empty() && values.is_sorted() => {
            let sorted = wanted.sorted();
            let (first, last) = (values[0], values[values.len() - 1]);
            let from = sorted.partition_point(|&k| k < first);
            let to = sorted.partition_point(|&k| k <= last);
            for &k in &sorted[from..to] {
                let mut r = values.partition_point(|&v| v < k);
                while values.get(r) == Some(&k) {
                    if live(first_row + r) {
                        hits.push((Key::One(KeyPart::Int(k)), first_row + r));
                    }
                    r += 1;
                }
            }
        }
        Some((values, wanted)) => hits.extend(
            values
                .iter()
                .enumerate()
                .filter(|&(r, &v)| wanted.contains(v) && live(first_row + r))
                .map(|(r, &v)| (Key::One(KeyPart::Int(v)), first_row + r)),
        ),
        None => {
            let reader = KeyReader::new(keys.columns());
            hits.extend(
                (0..keys.num_rows())
                    .filter(|&r| live(first_row + r))
                    .map(|r| (reader.key(r), first_row + r))
                    .filter(|(key, _)| lookup.contains(key)),
            );
        }
    }
}

/// Change-data rows above which a commit's change data is encoded and
/// written as one file per core, in parallel.
const CDC_PART_ROWS: usize = 20_000;

/// The key state of one primary-key value while a batch is replayed.
#[derive(Debug, Default, Clone, Copy)]
struct Slot {
    /// Arena index of the row the key holds now; `None` when absent.
    current: Option<usize>,
    /// Where the key's stored row came from: (candidate file, row).
    origin: Option<(usize, usize)>,
}

/// A data file read because it may hold a touched key.
struct Candidate<'b> {
    path: String,
    entry: FileEntry,
    rows: usize,
    /// Rows whose key the batch touches (dropped from the replacement), with their keys.
    hits: Vec<(Key, usize)>,
    /// Those rows decoded (moved into the replay arena): the values read
    /// from the file, or borrowed from the source's before image
    /// ([`Planner::plan_upsert`], deletion vectors), with the stored metadata.
    stored: Vec<(Cow<'b, [Value]>, RowMeta)>,
    /// The whole file as stored, when remote and kept for its rewrite.
    fetched: Option<bytes::Bytes>,
}

/// Data files to write.
enum WriteJob<'a, 'b> {
    /// One new file of rows whose keys the table did not hold.
    Fresh { rows: Vec<&'a OutRow<'b>> },
    /// A file to rewrite: read it again (dropped after the key lookup, unless
    /// `fetched`), write its pieces.
    Reread {
        path: &'a str,
        entry: &'a FileEntry,
        fetched: Option<&'a bytes::Bytes>,
        hits: &'a [(Key, usize)],
        finals: Vec<(usize, &'a OutRow<'b>)>,
    },
}

/// Maps `f` over `items` on up to one thread per core, keeping the order.
fn par_map<T: Send, R: Send>(items: Vec<T>, f: impl Fn(T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(items.len());
    if threads <= 1 {
        return items.into_iter().map(f).collect();
    }
    let mut lanes: Vec<Vec<(usize, T)>> = (0..threads).map(|_| Vec::new()).collect();
    for (i, item) in items.into_iter().enumerate() {
        lanes[i % threads].push((i, item));
    }
    let f = &f;
    let mut results: Vec<(usize, R)> = std::thread::scope(|scope| {
        let handles: Vec<_> = lanes
            .into_iter()
            .map(|lane| scope.spawn(move || lane.into_iter().map(|(i, item)| (i, f(item))).collect::<Vec<_>>()))
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("a writer thread panicked")).collect()
    });
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

impl Planner<'_> {
    fn encode_err(&self, e: EncodeError) -> DeltaError {
        DeltaError::Encode { table: self.table_dir.to_path_buf(), column: e.column, problem: e.problem }
    }

    fn file_err(&self, e: FileError) -> DeltaError {
        e.into_delta(self.table_dir)
    }

    fn arrow_err(&self, context: &'static str) -> impl Fn(deltalake::arrow::error::ArrowError) -> DeltaError + '_ {
        move |e| DeltaError::arrow(self.table_dir, context, e)
    }

    fn key_types(&self) -> Vec<&ColumnType> {
        self.layout.pk.iter().map(|&i| &self.layout.source.columns[i].data_type).collect()
    }

    /// Reads the rows of a data file its deletion vector does not delete,
    /// conformed to the table's layout, as one batch.
    fn read_live_rows(&self, path: &str, entry: &FileEntry) -> Result<RecordBatch, DeltaError> {
        let batches = read_file(self.files, path).map_err(|e| self.file_err(e))?;
        let live = drop_deleted(batches, entry.deleted_rows()).map_err(self.arrow_err("drop deleted rows"))?;
        self.conformed(&live, &self.layout.arrow)
    }

    /// Reads only the primary-key columns of a data file (of `size` bytes),
    /// conformed to the table's key types, in the file's read batches (not
    /// concatenated: the copy cost ~5 % of the CPU of a random-key batch).
    fn read_key_columns(&self, path: &str, size: i64) -> Result<Vec<RecordBatch>, DeltaError> {
        let fields: Vec<_> = self.layout.pk.iter().map(|&i| self.layout.arrow.field(i).clone()).collect();
        let names: Vec<String> = fields.iter().map(|f| f.name().clone()).collect();
        let batches = read_part(self.files, path, size, Some(&names), None).map_err(|e| self.file_err(e))?;
        let schema = Arc::new(Schema::new(fields));
        batches
            .iter()
            .map(|b| crate::encode::conform(b, &schema))
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.arrow_err("conform a data file to the table schema"))
    }

    /// Reads the metadata columns of the sorted `rows` of a data file (of
    /// `size` bytes).
    fn read_metas(&self, path: &str, size: i64, rows: &[usize]) -> Result<Vec<RowMeta>, DeltaError> {
        let n_source = self.layout.n_source();
        let fields: Vec<_> = self.layout.arrow.fields()[n_source..].iter().map(|f| f.as_ref().clone()).collect();
        let names: Vec<String> = fields.iter().map(|f| f.name().clone()).collect();
        let batches = read_part(self.files, path, size, Some(&names), Some(rows)).map_err(|e| self.file_err(e))?;
        let metas = self.conformed(&batches, &Arc::new(Schema::new(fields)))?;
        if metas.num_rows() != rows.len() {
            return Err(DeltaError::Encode {
                table: self.table_dir.to_path_buf(),
                column: "(row selection)".into(),
                problem: format!("{path}: asked for the metadata of {} rows, read {}", rows.len(), metas.num_rows()),
            });
        }
        decode_metas(&metas, 0, &(0..metas.num_rows()).collect::<Vec<_>>()).map_err(|e| self.encode_err(e))
    }

    /// Reads the sorted `rows` (`None`: all) of a data file, whole, conformed
    /// to the table's layout, as one batch: from `fetched` when the file is
    /// in memory already. Rows are physical (row `i` of the file is row `i`
    /// of the batch when all are read), deleted by its vector or not.
    fn read_data_rows(
        &self,
        path: &str,
        size: i64,
        fetched: Option<&bytes::Bytes>,
        rows: Option<&[usize]>,
    ) -> Result<RecordBatch, DeltaError> {
        let batches = match fetched {
            Some(bytes) => crate::files::read_fetched(bytes.clone(), path, rows),
            None if rows.is_none() => read_file(self.files, path),
            None => read_part(self.files, path, size, None, rows),
        }
        .map_err(|e| self.file_err(e))?;
        self.conformed(&batches, &self.layout.arrow)
    }

    fn conformed(&self, batches: &[RecordBatch], schema: &SchemaRef) -> Result<RecordBatch, DeltaError> {
        let batches = batches
            .iter()
            .map(|b| crate::encode::conform(b, schema))
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.arrow_err("conform a data file to the table schema"))?;
        concat_batches(schema, &batches).map_err(self.arrow_err("concatenate a data file"))
    }

    /// Encodes rows and writes them as a new data file; adds it to the plan.
    fn add_data_file(&self, plan: &mut Plan, batches: &[RecordBatch]) -> Result<(), DeltaError> {
        let written = write_file(self.files, data_file_name(), self.layout, &self.layout.arrow, batches, true)
            .map_err(|e| self.file_err(e))?;
        plan.written.push(written.rel_path.clone());
        push_add(plan, written);
        Ok(())
    }

    /// Writes the change data of `rows` (with their change types): one file,
    /// or above [`CDC_PART_ROWS`] rows one per core, encoded in parallel
    /// (readers take every change-data file of a commit as one set).
    fn add_cdc_file(&self, plan: &mut Plan, rows: &[&OutRow<'_>], types: &[&'static str]) -> Result<(), DeltaError> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let parts = if rows.len() > CDC_PART_ROWS { cores } else { 1 };
        let part_rows = rows.len().div_ceil(parts).max(1);
        let mut jobs: Vec<(&[&OutRow<'_>], &[&'static str])> =
            rows.chunks(part_rows).zip(types.chunks(part_rows)).collect();
        if jobs.is_empty() {
            jobs.push((rows, types)); // an empty file, as before the split
        }
        let written = par_map(jobs, |(rows, types)| {
            let batch = encode(self.layout, rows, Some(types)).map_err(|e| self.encode_err(e))?;
            write_file(self.files, cdc_file_name(), self.layout, &self.layout.cdc_arrow, &[batch], false)
                .map_err(|e| self.file_err(e))
        });
        for written in written {
            let written = written?;
            plan.written.push(written.rel_path.clone());
            plan.metrics.bytes_written += written.size as u64;
            plan.actions.push(cdc_action(&written.rel_path, written.size));
        }
        Ok(())
    }

    fn remove(&self, plan: &mut Plan, path: &str, entry: &FileEntry) {
        plan.actions.push(remove_file_action(path, entry, true));
        plan.removed.push(path.to_string());
        plan.metrics.files_removed += 1;
        plan.rewrites = true;
    }

    /// Splits a rewritten file into pieces of at most `piece_rows` rows: the
    /// rows of each range the batch did not touch, plus the final rows of the
    /// keys whose stored row lay in that range (`finals`, sorted by that row).
    fn pieces<'x, 'b>(
        &self,
        data: &RecordBatch,
        deleted: Option<&RoaringTreemap>,
        hits: &[(Key, usize)],
        finals: &[(usize, &'x OutRow<'b>)],
    ) -> Result<Vec<(RecordBatch, Vec<&'x OutRow<'b>>)>, DeltaError> {
        let n = data.num_rows();
        let mut keep = vec![true; n];
        for r in deleted.into_iter().flatten() {
            if let Some(k) = keep.get_mut(r as usize) {
                *k = false;
            }
        }
        for &(_, r) in hits {
            keep[r] = false;
        }
        let piece_rows = self.piece_rows.max(1);
        let mut out = Vec::new();
        let mut next = 0;
        for start in (0..n).step_by(piece_rows) {
            let len = piece_rows.min(n - start);
            let mask = BooleanArray::from(keep[start..start + len].to_vec());
            let survivors = filter_record_batch(&data.slice(start, len), &mask)
                .map_err(self.arrow_err("filter a rewritten file"))?;
            let end = next + finals[next..].partition_point(|(r, _)| *r < start + len);
            let rows: Vec<&OutRow> = finals[next..end].iter().map(|&(_, row)| row).collect();
            next = end;
            if survivors.num_rows() + rows.len() > 0 {
                out.push((survivors, rows));
            }
        }
        Ok(out)
    }

    /// Writes one data file: copied rows, then encoded rows.
    fn write_piece(&self, survivors: Option<RecordBatch>, rows: &[&OutRow<'_>]) -> Result<WrittenFile, DeltaError> {
        let changed = encode(self.layout, rows, None).map_err(|e| self.encode_err(e))?;
        let batches: Vec<RecordBatch> = survivors.into_iter().chain([changed]).collect();
        write_file(self.files, data_file_name(), self.layout, &self.layout.arrow, &batches, true)
            .map_err(|e| self.file_err(e))
    }

    /// Plans a batch for a table with a primary key; `table_state` is the table
    /// state the index was built from (the `add` actions a deletion-vector
    /// plan replaces come from it).
    pub fn plan_upsert<'b>(&self, batch: &'b TableBatch, table_state: &DeltaTableState) -> Result<Plan, DeltaError> {
        let started = Instant::now();
        let table = self.table_dir;
        let pk = &self.layout.pk;
        let types = self.key_types();
        let full_scan = batch.changes.iter().any(|c| matches!(c.change, RowChange::Truncate));

        // 1. Keys of every change, and the keys whose stored rows are needed:
        //    updated / deleted keys not (re)inserted earlier in the batch.
        //    With deletion vectors nothing is rewritten, so a stored row's
        //    source values are only needed for its pre-image: a key whose
        //    first change is an update or delete with a complete before image
        //    (every column sent: MySQL / MariaDB `binlog_row_image = FULL`,
        //    PostgreSQL `REPLICA IDENTITY FULL`) takes them from that image,
        //    and only the stored row's metadata columns are read (`images`).
        let by_image = self.deletion_vectors && !full_scan;
        let complete =
            |row: &[Value]| row.len() == self.layout.n_source() && !row.iter().any(|v| matches!(v, Value::Unchanged));
        let n = batch.changes.len();
        let mut images: KeyMap<&'b [Value]> =
            KeyMap::with_capacity_and_hasher(if by_image { n } else { 0 }, Default::default());
        let mut keys: Vec<(Option<Key>, Option<Key>)> = Vec::with_capacity(n);
        let mut lookup = KeySet::with_capacity_and_hasher(n, Default::default());
        let mut known = KeySet::with_capacity_and_hasher(n, Default::default());
        for sc in &batch.changes {
            let key = |row: &[Value]| key_of_row(row, pk, &types);
            let (before, after, image) = match &sc.change {
                RowChange::Insert { after } => (None, Some(key(after)), None),
                RowChange::Update { before, after } => (Some(key(before)), Some(key(after)), Some(before)),
                RowChange::Delete { before } => (Some(key(before)), None, Some(before)),
                RowChange::Truncate => (None, None, None),
            };
            if !full_scan {
                match (&before, &after) {
                    (Some(b), a) => {
                        if known.insert(b.clone()) {
                            lookup.insert(b.clone());
                            if let Some(image) = image.filter(|i| by_image && complete(i)) {
                                images.insert(b.clone(), image.as_slice());
                            }
                        }
                        if let Some(a) = a.as_ref().filter(|a| *a != b) {
                            if known.insert(a.clone()) {
                                lookup.insert(a.clone());
                            }
                        }
                    }
                    (None, Some(a)) => {
                        if known.insert(a.clone()) && self.inserts_may_exist {
                            lookup.insert(a.clone());
                        }
                    }
                    (None, None) => {}
                }
            }
            keys.push((before, after));
        }
        drop(known);
        let keyed = started.elapsed();

        // 2. Read (in parallel) only the files that may hold a looked-up key,
        //    and note the rows that really do.
        let sorted = KeyLookup::new(lookup.iter().cloned());
        let wanted: Vec<(&String, &FileEntry)> = if full_scan || !sorted.is_empty() {
            self.index.files.iter().filter(|(_, e)| full_scan || sorted.hits(&e.bounds)).collect()
        } else {
            Vec::new()
        };
        let files_read = wanted.len();
        let read_paths: Vec<String> = wanted.iter().map(|(path, _)| (*path).clone()).collect();

        // A single integer key column is searched without building keys.
        let int_lookup: Option<IntLookup> = lookup
            .iter()
            .map(|k| match k {
                Key::One(KeyPart::Int(v)) => Some(*v),
                _ => None,
            })
            .collect::<Option<Vec<i64>>>()
            .map(IntLookup::new);
        let fetched_total = AtomicU64::new(0);
        let scanned = par_map(wanted, |(path, entry)| -> Result<Candidate, DeltaError> {
            if full_scan {
                let data = self.read_live_rows(path, entry)?;
                let key_columns: Vec<_> = pk.iter().map(|&i| data.column(i).clone()).collect();
                let reader = KeyReader::new(&key_columns);
                let hits: Vec<(Key, usize)> = (0..data.num_rows()).map(|r| (reader.key(r), r)).collect();
                let rows: Vec<usize> = (0..data.num_rows()).collect();
                let stored = decode_rows(self.layout, &data, &rows).map_err(|e| self.encode_err(e))?;
                let stored = stored.into_iter().map(|(values, meta)| (Cow::Owned(values), meta)).collect();
                let n = rows.len();
                return Ok(Candidate {
                    path: path.clone(),
                    entry: (*entry).clone(),
                    rows: n,
                    hits,
                    stored,
                    fetched: None,
                });
            }
            // The key columns first; then only the rows holding a looked-up
            // key (whole). The file is read again, whole, when it is
            // rewritten: holding every touched file between the two steps
            // cost ~40 MB of peak RSS in the update/delete benchmark.
            let key_batches = self.read_key_columns(path, entry.size)?;
            // Rows the file's deletion vector deletes hold no live key.
            let deleted = entry.deleted_rows();
            let live = |r: usize| !deleted.is_some_and(|d| d.contains(r as u64));
            let mut hits: Vec<(Key, usize)> = Vec::new();
            let mut file_rows = 0;
            for keys in &key_batches {
                find_hits(keys, file_rows, int_lookup.as_ref(), &lookup, live, &mut hits);
                file_rows += keys.num_rows();
            }
            let mut fetched = None;
            // Hits whose values come from a before image: their metadata only.
            let image_of: Vec<Option<&'b [Value]>> = hits.iter().map(|(key, _)| images.get(key).copied()).collect();
            let rows_where = |imaged: bool| -> Vec<usize> {
                hits.iter().zip(&image_of).filter(|(_, i)| i.is_some() == imaged).map(|((_, r), _)| *r).collect()
            };
            let (imaged, whole) = (rows_where(true), rows_where(false));
            let mut metas =
                if imaged.is_empty() { Vec::new() } else { self.read_metas(path, entry.size, &imaged)? }.into_iter();
            let read_whole = if whole.is_empty() {
                Vec::new()
            } else {
                let rows = whole;
                // Remote and to be rewritten: the rows would cost most of the
                // file in ranged reads, and the rewrite needs all of it: fetch
                // it whole, once. (With deletion vectors nothing is rewritten:
                // ranged reads of the rows' row groups only.)
                if self.files.local_dir().is_none() && !self.deletion_vectors {
                    fetched = Some(
                        self.files
                            .get(path)
                            .map_err(|source| self.file_err(FileError::Store { context: "read a file", source }))?,
                    );
                }
                let data = self.read_data_rows(path, entry.size, fetched.as_ref(), Some(&rows))?;
                if data.num_rows() != rows.len() {
                    return Err(DeltaError::Encode {
                        table: self.table_dir.to_path_buf(),
                        column: "(row selection)".into(),
                        problem: format!("{path}: asked for {} rows, read {}", rows.len(), data.num_rows()),
                    });
                }
                decode_rows(self.layout, &data, &(0..data.num_rows()).collect::<Vec<_>>())
                    .map_err(|e| self.encode_err(e))?
            };
            // Both lists are in hit (row) order: merge them back into it.
            let mut stored: Vec<(Cow<'b, [Value]>, RowMeta)> = Vec::with_capacity(hits.len());
            let mut read_whole = read_whole.into_iter();
            for image in &image_of {
                let next = match image {
                    Some(values) => metas.next().map(|meta| (Cow::Borrowed(*values), meta)),
                    None => read_whole.next().map(|(values, meta)| (Cow::Owned(values), meta)),
                };
                stored.push(next.expect("one stored row per hit"));
            }
            let kept = fetched.as_ref().map_or(0, |b| b.len() as u64);
            if kept > 0 && fetched_total.fetch_add(kept, Ordering::Relaxed) + kept > FETCHED_BYTES_BUDGET {
                fetched = None; // over the batch's budget: fetched again for the rewrite
            }
            Ok(Candidate { path: path.clone(), entry: (*entry).clone(), rows: file_rows, hits, stored, fetched })
        });
        let mut candidates = scanned.into_iter().collect::<Result<Vec<_>, _>>()?;
        let read = started.elapsed();

        // 3. Replay the changes in order, starting from the stored rows found.
        let mut arena: Vec<OutRow<'b>> = Vec::with_capacity(batch.changes.len() + lookup.len());
        let mut state: KeyMap<Slot> = KeyMap::default();
        state.reserve(batch.changes.len() + lookup.len());
        for (f, cand) in candidates.iter_mut().enumerate() {
            let decoded = std::mem::take(&mut cand.stored);
            for ((key, r), (values, meta)) in cand.hits.iter().zip(decoded) {
                let slot = state.entry(key.clone()).or_default();
                if slot.origin.is_none() {
                    arena.push(OutRow { values, meta });
                    *slot = Slot { current: Some(arena.len() - 1), origin: Some((f, *r)) };
                } // else: a duplicate of the key in the table; its row is dropped too
            }
        }
        let mut cdc: Vec<(usize, &'static str)> = Vec::with_capacity(batch.changes.len() * 2);
        let mut metas = MetaCache { last: None };
        let mut plan = Plan {
            read: read_paths,
            reads_keys: full_scan || !sorted.is_empty(),
            whole_table: full_scan,
            ..Plan::default()
        };
        for (sc, (kb, ka)) in batch.changes.iter().zip(keys) {
            match &sc.change {
                RowChange::Insert { after } => {
                    let ka = ka.expect("inserts have a key");
                    let slot = state.entry(ka).or_default();
                    let values = resolve_unchanged(after, slot.current.map(|c| &*arena[c].values));
                    arena.push(OutRow { values, meta: metas.meta(table, sc, Op::Insert)? });
                    let idx = arena.len() - 1;
                    match slot.current {
                        Some(old) => cdc.extend([(old, UPDATE_PRE), (idx, UPDATE_POST)]),
                        None => cdc.push((idx, INSERT)),
                    }
                    slot.current = Some(idx);
                }
                RowChange::Update { before, after } => {
                    let (kb, ka) = (kb.expect("updates have keys"), ka.expect("updates have keys"));
                    let old = state.get(&kb).and_then(|s| s.current);
                    let base: &[Value] = match old {
                        Some(c) => &arena[c].values,
                        None => before,
                    };
                    let values = resolve_unchanged(after, Some(base));
                    arena.push(OutRow { values, meta: metas.meta(table, sc, Op::Update)? });
                    let idx = arena.len() - 1;
                    if ka != kb {
                        if let Some(s) = state.get_mut(&kb) {
                            s.current = None;
                        }
                        let target = state.entry(ka).or_default();
                        if let Some(overwritten) = target.current {
                            cdc.push((overwritten, DELETE));
                        }
                        target.current = Some(idx);
                    } else {
                        state.entry(kb).or_default().current = Some(idx);
                    }
                    match old {
                        Some(old) => cdc.extend([(old, UPDATE_PRE), (idx, UPDATE_POST)]),
                        None => {
                            plan.missing_keys += 1;
                            cdc.push((idx, INSERT));
                        }
                    }
                }
                RowChange::Delete { .. } => {
                    let kb = kb.expect("deletes have a key");
                    match state.get_mut(&kb).and_then(|s| s.current.take()) {
                        Some(old) => cdc.push((old, DELETE)),
                        None => plan.missing_keys += 1,
                    }
                }
                RowChange::Truncate => {
                    let mut present: Vec<usize> = state.values_mut().filter_map(|s| s.current.take()).collect();
                    present.sort_unstable();
                    cdc.extend(present.into_iter().map(|i| (i, DELETE)));
                }
            }
        }
        plan.metrics.changes = batch.changes.len();
        let replayed = started.elapsed();

        // 4. Final rows go back next to where their key was stored (the file
        //    is rewritten in pieces of at most `piece_rows`, each piece with
        //    the after-images of its own rows, so key ranges stay tight), or
        //    into a new file for keys the table did not hold.
        //    With deletion vectors, every final row goes to a new file and
        //    the stored rows of touched keys are marked deleted instead.
        let marking = self.deletion_vectors && !full_scan;
        let mut per_row: Vec<Vec<(usize, usize)>> = vec![Vec::new(); candidates.len()];
        let mut fresh: Vec<(&Key, usize)> = Vec::new();
        for (key, slot) in &state {
            if let Some(row) = slot.current {
                match slot.origin {
                    Some((f, r)) if !full_scan && !marking => per_row[f].push((r, row)),
                    _ => fresh.push((key, row)),
                }
            }
        }
        let mut jobs: Vec<WriteJob<'_, 'b>> = Vec::new();
        let mut marks: Vec<(&Candidate, RoaringTreemap)> = Vec::new();
        for (f, cand) in candidates.iter().enumerate() {
            if cand.hits.is_empty() && !full_scan {
                continue; // read for nothing: its key range held none of the keys
            }
            if marking {
                let mut rows = cand.entry.deleted_rows().cloned().unwrap_or_default();
                rows.extend(cand.hits.iter().map(|&(_, r)| r as u64));
                marks.push((cand, rows));
                continue;
            }
            self.remove(&mut plan, &cand.path, &cand.entry);
            if full_scan {
                continue;
            }
            let mut finals: Vec<(usize, &OutRow)> =
                std::mem::take(&mut per_row[f]).into_iter().map(|(r, i)| (r, &arena[i])).collect();
            finals.sort_unstable_by_key(|(r, _)| *r);
            plan.rows_copied += (cand.rows - cand.hits.len()) as u64;
            plan.rows_written += finals.len() as u64;
            jobs.push(WriteJob::Reread {
                path: &cand.path,
                entry: &cand.entry,
                fetched: cand.fetched.as_ref(),
                hits: &cand.hits,
                finals,
            });
        }
        if !fresh.is_empty() {
            // In key order: each new file holds a narrow key range (so later
            // batches pass it by) and its key column is sorted (searched, not
            // probed row by row, when a batch does read it).
            fresh.sort_unstable_by(|a, b| a.0.cmp(b.0));
            plan.rows_written += fresh.len() as u64;
            for piece in fresh.chunks(self.piece_rows.max(1)) {
                jobs.push(WriteJob::Fresh { rows: piece.iter().map(|&(_, i)| &arena[i]).collect() });
            }
        }
        let written = par_map(jobs, |job| -> Result<Vec<WrittenFile>, DeltaError> {
            match job {
                WriteJob::Fresh { rows } => Ok(vec![self.write_piece(None, &rows)?]),
                WriteJob::Reread { path, entry, fetched, hits, finals } => {
                    let data = self.read_data_rows(path, entry.size, fetched, None)?;
                    let pieces = self.pieces(&data, entry.deleted_rows(), hits, &finals)?;
                    drop(data);
                    pieces.into_iter().map(|(survivors, rows)| self.write_piece(Some(survivors), &rows)).collect()
                }
            }
        });
        for files in written {
            for file in files? {
                plan.written.push(file.rel_path.clone());
                push_add(&mut plan, file);
            }
        }
        if !marks.is_empty() {
            self.mark_deleted(&mut plan, table_state, marks)?;
        }
        plan.rows_deleted = cdc.iter().filter(|(_, t)| *t == DELETE).count() as u64;
        let rewritten = started.elapsed();

        // 5. Change data, unless the commit only adds rows of new keys.
        if self.uncommitted.is_some() || plan.rewrites || cdc.iter().any(|(_, t)| *t != INSERT) {
            let rows: Vec<&OutRow> = cdc.iter().map(|&(i, _)| &arena[i]).collect();
            let types: Vec<&'static str> = cdc.iter().map(|&(_, t)| t).collect();
            self.add_cdc_file(&mut plan, &rows, &types)?;
        }
        plan.metrics.rows_written = plan.rows_written;
        tracing::debug!(
            table = %table.display(), changes = batch.changes.len(), lookups = lookup.len(), files_read,
            rows_copied = plan.rows_copied, keyed = ?keyed, read = ?read - keyed, replayed = ?replayed - read,
            rewritten = ?rewritten - replayed, cdc = ?started.elapsed() - rewritten, "batch planned"
        );
        Ok(plan)
    }

    /// Adds to `plan` the replacement of each marked file's `add` (taken from
    /// `state`) by one carrying its merged deletion vector (`rows`: the old
    /// vector's rows and the new ones); the vectors go to one new `.bin`
    /// file, written here (never inline: [`Placement::File`] says why).
    fn mark_deleted(
        &self,
        plan: &mut Plan,
        state: &DeltaTableState,
        marks: Vec<(&Candidate, RoaringTreemap)>,
    ) -> Result<(), DeltaError> {
        let state_err = |problem: String| DeltaError::State { table: self.table_dir.to_path_buf(), problem };
        let mut wanted: HashMap<&str, Option<deltalake::kernel::LogicalFileView>> =
            marks.iter().map(|(c, _)| (c.path.as_str(), None)).collect();
        for view in state.log_data().iter() {
            if let Some(slot) = wanted.get_mut(view.path().as_ref()) {
                *slot = Some(view);
            }
        }
        let vectors: Vec<&RoaringTreemap> = marks.iter().map(|(_, rows)| rows).collect();
        let (descriptors, bin) =
            crate::deletion_vector::store_in(self.files, self.table_dir, &vectors, Placement::File)?;
        if let Some((bin, size)) = bin {
            plan.metrics.bytes_written += size;
            plan.written.push(bin);
        }
        for ((cand, rows), descriptor) in marks.into_iter().zip(descriptors) {
            let view = wanted.get(cand.path.as_str()).and_then(Option::as_ref);
            let pending = self.uncommitted.and_then(|parts| parts.uncommitted_add(&cand.path));
            let add = match (view, pending) {
                (None, Some(pending)) => {
                    // Written by an earlier part of this source transaction: its
                    // (uncommitted) `add` gets the vector; there is nothing to remove.
                    if cand.entry.rows.is_some_and(|n| rows.max().is_some_and(|m| m >= n as u64)) {
                        return Err(state_err(format!("a deletion vector of {} goes beyond its rows", cand.path)));
                    }
                    crate::deletion_vector_commit::with_vector(self.table_dir, pending, descriptor.clone())?
                }
                (view, _) => {
                    let view = view.ok_or_else(|| {
                        state_err(format!("{} is not an active data file of the table state", cand.path))
                    })?;
                    if let Some(records) = view.num_records().filter(|&n| rows.max().is_some_and(|m| m >= n as u64)) {
                        return Err(state_err(format!(
                            "a deletion vector of {} goes beyond its {records} rows",
                            cand.path
                        )));
                    }
                    plan.actions.push(Action::Remove(view.remove_action(true)));
                    crate::deletion_vector_commit::add_with_vector(self.table_dir, view, descriptor.clone())?
                }
            };
            plan.actions.push(Action::Add(add));
            plan.removed.push(cand.path.clone());
            plan.rewrites = true;
            let entry = FileEntry { deleted: Some(Arc::new(Deleted { descriptor, rows })), ..cand.entry.clone() };
            plan.added.push((cand.path.clone(), entry));
        }
        Ok(())
    }

    /// Plans a batch for a table without primary key (append-only changelog).
    pub fn plan_changelog<'b>(&self, batch: &'b TableBatch) -> Result<Plan, DeltaError> {
        let table = self.table_dir;
        let truncates = batch.changes.iter().any(|c| matches!(c.change, RowChange::Truncate));
        let mut plan = Plan { whole_table: truncates, ..Plan::default() };
        let mut metas = MetaCache { last: None };
        let mut arena: Vec<OutRow<'b>> = Vec::new();
        // Rows the table holds before the batch, needed only to record their deletion.
        let mut existing: Vec<usize> = Vec::new();
        if truncates {
            for (path, entry) in &self.index.files {
                let data = self.read_live_rows(path, entry)?;
                let rows: Vec<usize> = (0..data.num_rows()).collect();
                for (values, meta) in decode_rows(self.layout, &data, &rows).map_err(|e| self.encode_err(e))? {
                    arena.push(OutRow { values: Cow::Owned(values), meta });
                    existing.push(arena.len() - 1);
                }
            }
        }
        let mut appended: Vec<usize> = Vec::with_capacity(batch.changes.len());
        let mut cdc: Vec<(usize, &'static str)> = Vec::new();
        let mut table_truncated = false;
        for sc in &batch.changes {
            let row = match &sc.change {
                RowChange::Insert { after } => {
                    OutRow { values: resolve_unchanged(after, None), meta: metas.meta(table, sc, Op::Insert)? }
                }
                RowChange::Update { before, after } => {
                    OutRow { values: resolve_unchanged(after, Some(before)), meta: metas.meta(table, sc, Op::Update)? }
                }
                RowChange::Delete { before } => {
                    OutRow { values: resolve_unchanged(before, None), meta: metas.meta(table, sc, Op::Delete)? }
                }
                RowChange::Truncate => {
                    let gone: Vec<usize> = if table_truncated { Vec::new() } else { std::mem::take(&mut existing) };
                    table_truncated = true;
                    cdc.extend(gone.into_iter().chain(appended.drain(..)).map(|i| (i, DELETE)));
                    continue;
                }
            };
            arena.push(row);
            appended.push(arena.len() - 1);
            cdc.push((arena.len() - 1, INSERT));
        }
        plan.metrics.changes = batch.changes.len();
        if table_truncated {
            for (path, entry) in &self.index.files {
                self.remove(&mut plan, path, entry);
            }
        }
        if !appended.is_empty() {
            let out: Vec<&OutRow> = appended.iter().map(|&i| &arena[i]).collect();
            plan.rows_written = out.len() as u64;
            let data = encode(self.layout, &out, None).map_err(|e| self.encode_err(e))?;
            self.add_data_file(&mut plan, &[data])?;
        }
        plan.rows_deleted = cdc.iter().filter(|(_, t)| *t == DELETE).count() as u64;
        if self.uncommitted.is_some() || plan.rewrites {
            let rows: Vec<&OutRow> = cdc.iter().map(|&(i, _)| &arena[i]).collect();
            let types: Vec<&'static str> = cdc.iter().map(|&(_, t)| t).collect();
            self.add_cdc_file(&mut plan, &rows, &types)?;
        }
        plan.metrics.rows_written = plan.rows_written;
        Ok(plan)
    }

    /// Plans a batch that holds a TRUNCATE in segments: the changes before
    /// it, the TRUNCATE streamed ([`Planner::plan_truncate_streamed`]), the
    /// changes after it, each planned on the files the previous segments
    /// left, merged into one plan like the parts of a huge transaction (see
    /// [`crate::transaction_parts`]). The table is never read into memory.
    pub fn plan_in_segments(&self, batch: &TableBatch, table_state: &DeltaTableState) -> Result<Plan, DeltaError> {
        let mut index = self.index.clone();
        let mut parts = OpenParts::new(0);
        let planned = (|| {
            let mut truncated = false;
            for segment in split_at_truncates(batch) {
                let plan = {
                    // Before the first TRUNCATE the files of earlier parts (if
                    // any) are there; after it, only those of this batch.
                    let earlier = if truncated { &parts } else { self.uncommitted.unwrap_or(&parts) };
                    let planner = Planner { index: &index, uncommitted: Some(earlier), ..*self };
                    match &segment {
                        Some(changes) if self.layout.has_pk() => planner.plan_upsert(changes, table_state)?,
                        Some(changes) => planner.plan_changelog(changes)?,
                        None => {
                            truncated = true;
                            planner.plan_truncate_streamed()?
                        }
                    }
                };
                for path in &plan.removed {
                    index.files.remove(path);
                }
                index.files.extend(plan.added.iter().cloned());
                for path in parts.absorb(plan) {
                    self.files.delete(&path);
                }
            }
            Ok(())
        })();
        if let Err(e) = planned {
            for path in parts.written() {
                self.files.delete(path);
            }
            return Err(e);
        }
        Ok(parts.finish(Plan::default()).0)
    }

    /// Plans a TRUNCATE on its own, streamed: every data file is removed and
    /// its live rows are copied as `delete` change rows into a change-data
    /// file, one read batch at a time (memory holds one batch, never the
    /// table). The rows keep their stored metadata columns, as the replay of
    /// a whole batch gives them.
    pub fn plan_truncate_streamed(&self) -> Result<Plan, DeltaError> {
        let mut plan = Plan { whole_table: true, ..Plan::default() };
        for (path, entry) in &self.index.files {
            self.remove(&mut plan, path, entry);
            let reader =
                crate::files::open_reader(self.files, path, TRUNCATE_READ_ROWS).map_err(|e| self.file_err(e))?;
            let mut cdc: Option<crate::files::OpenFile> = None;
            let mut offset = 0u64;
            for batch in reader {
                let batch = batch.map_err(self.arrow_err("read a truncated file"))?;
                let n = batch.num_rows() as u64;
                let live = crate::files::drop_deleted_from(batch, offset, entry.deleted_rows())
                    .map_err(self.arrow_err("drop deleted rows"))?;
                offset += n;
                let live = crate::encode::conform(&live, &self.layout.arrow)
                    .map_err(self.arrow_err("conform a data file to the table schema"))?;
                if live.num_rows() == 0 {
                    continue;
                }
                let mut columns = live.columns().to_vec();
                columns.push(Arc::new(deltalake::arrow::array::StringArray::from(vec![DELETE; live.num_rows()])));
                let changes = RecordBatch::try_new(self.layout.cdc_arrow.clone(), columns)
                    .map_err(self.arrow_err("build truncated change rows"))?;
                let file = match &mut cdc {
                    Some(file) => file,
                    None => {
                        let file = crate::files::OpenFile::create(
                            self.files,
                            cdc_file_name(),
                            self.layout,
                            &self.layout.cdc_arrow,
                        )
                        .map_err(|e| self.file_err(e))?;
                        plan.written.push(file.rel_path.clone());
                        cdc.insert(file)
                    }
                };
                file.write(&changes, false).map_err(|e| self.file_err(e))?;
                plan.rows_deleted += changes.num_rows() as u64;
            }
            if let Some(file) = cdc {
                let written = file.close().map_err(|e| self.file_err(e))?;
                plan.metrics.bytes_written += written.size as u64;
                plan.actions.push(cdc_action(&written.rel_path, written.size));
            }
        }
        plan.metrics.changes = 1;
        Ok(plan)
    }

    /// Plans the removal of every data file (TRUNCATE without rows, or a snapshot reset).
    pub fn plan_remove_all(&self) -> Plan {
        let mut plan = Plan { whole_table: true, ..Plan::default() };
        for (path, entry) in &self.index.files {
            self.remove(&mut plan, path, entry);
            plan.rows_deleted += entry.live_rows().unwrap_or(0).max(0) as u64;
        }
        plan
    }
}

/// `batch` cut at each TRUNCATE: runs of other changes (`Some`, with the
/// batch's position) and the truncates (`None`), in order.
fn split_at_truncates(batch: &TableBatch) -> Vec<Option<TableBatch>> {
    let mut out = Vec::new();
    let mut run: Vec<SourcedChange> = Vec::new();
    for change in &batch.changes {
        if matches!(change.change, RowChange::Truncate) {
            if !run.is_empty() {
                out.push(Some(TableBatch { changes: std::mem::take(&mut run), position: batch.position.clone() }));
            }
            out.push(None);
        } else {
            run.push(change.clone());
        }
    }
    if !run.is_empty() {
        out.push(Some(TableBatch { changes: run, position: batch.position.clone() }));
    }
    out
}

/// Rows read at a time by a streamed TRUNCATE.
const TRUNCATE_READ_ROWS: usize = 16 * 1024;

/// Records a written data file as an Add of the plan.
pub(crate) fn push_add(plan: &mut Plan, written: WrittenFile) {
    plan.metrics.files_added += 1;
    plan.metrics.bytes_written += written.size as u64;
    plan.actions.push(add_action(&written.rel_path, written.size, written.stats.json.clone()));
    plan.added.push((
        written.rel_path,
        FileEntry {
            size: written.size,
            rows: Some(written.stats.num_records),
            bounds: written.stats.key_bounds,
            deleted: None,
        },
    ));
}

/// `after` with every [`Value::Unchanged`] replaced by the stored value of the
/// same column (`base`), or NULL when nothing is stored. Borrows `after` when
/// it holds no unchanged value.
fn resolve_unchanged<'b>(after: &'b [Value], base: Option<&[Value]>) -> Cow<'b, [Value]> {
    if !after.iter().any(|v| matches!(v, Value::Unchanged)) {
        return Cow::Borrowed(after);
    }
    Cow::Owned(
        after
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::Unchanged => match base.and_then(|b| b.get(i)) {
                    Some(Value::Unchanged) | None => Value::Null,
                    Some(stored) => stored.clone(),
                },
                v => v.clone(),
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unchanged_values_keep_the_stored_value() {
        let after = vec![Value::Int(1), Value::Unchanged, Value::Text("new".into())];
        let stored = vec![Value::Int(1), Value::Text("big toast".into()), Value::Text("old".into())];
        let merged = resolve_unchanged(&after, Some(&stored));
        assert_eq!(merged.as_ref(), &[Value::Int(1), Value::Text("big toast".into()), Value::Text("new".into())]);
        assert!(matches!(resolve_unchanged(&stored, None), Cow::Borrowed(_)));
        assert_eq!(resolve_unchanged(&after, None)[1], Value::Null);
    }
}
