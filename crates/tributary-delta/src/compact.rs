//! Compaction: bin-packs a table's small data files into files near a target
//! size, rows ordered by primary key so that each new file covers a tight key
//! range (later updates then rewrite fewer files). The commit removes and adds
//! with `dataChange = false`: readers of the change feed see nothing, time
//! travel to earlier versions still reads the old files until vacuum.
//! Change-data files are history and are never touched.
//!
//! A file with a deletion vector is compacted without the rows its vector
//! deletes (the vector is purged); a file whose vector deletes at least
//! [`PURGE_DELETED_FRACTION`] of its rows is taken whatever its size.
//!
//! delta-rs' `optimize` needs its datafusion feature (a large dependency the
//! rest of Tributary does not need) and would not keep Tributary's key
//! statistics; this plans the rewrite with the writer's own file index and
//! commits through the same conflict rules as streaming commits: another
//! writer's append lets the same actions commit again, a removed input file
//! makes the compaction plan again on the new version.
//!
//! Inside `tributary run` compaction runs on the table's writer between
//! batches, so it never conflicts with the pipeline's own streaming commits;
//! `max_bytes_per_run` bounds how long one run holds streaming up.

use crate::apply::{push_add, Plan};
use crate::commit::remove_file_action;
use crate::files::{data_file_name, drop_deleted_from, open_reader, read_file, FileEntry, FileIndex, OpenFile};
use crate::schema::TableLayout;
use crate::DeltaError;
use deltalake::arrow::array::{Array, RecordBatch, UInt32Array};
use deltalake::arrow::compute::{concat, interleave_record_batch, lexsort_to_indices, SortColumn};
use deltalake::kernel::Action;
use std::path::Path;

/// At most this many live rows are read by one run (the first file is taken
/// whatever its size): a run holds its inputs' live rows in memory once.
/// Files compressed far better than the data (long runs of equal values)
/// would otherwise pass `max_bytes_per_run` with many more rows: 1.7M rows
/// in one run peaked at ~500 MB before this bound; 1M rows still added
/// ~90 MB to the pipeline's peak (the 5M-row measurement of
/// large_transaction_mariadb).
pub const MAX_ROWS_PER_RUN: u64 = 500_000;

/// Rows gathered and handed to the Parquet writer at a time.
const WRITE_PIECE_ROWS: usize = 65_536;

/// A file whose deletion vector deletes at least this fraction of its rows is
/// compacted like a small file, so that readers stop reading dead rows.
pub const PURGE_DELETED_FRACTION: f64 = 0.25;

/// When and how a table is compacted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompactionOptions {
    /// Size the new files aim for; files below half of it count as small.
    pub target_file_bytes: u64,
    /// Compact only when the table has at least this many small files.
    pub min_small_files: usize,
    /// At most this many bytes of small files are rewritten in one run.
    pub max_bytes_per_run: u64,
}

impl Default for CompactionOptions {
    fn default() -> Self {
        CompactionOptions {
            target_file_bytes: 64 * 1024 * 1024,
            min_small_files: 16,
            max_bytes_per_run: 48 * 1024 * 1024,
        }
    }
}

impl CompactionOptions {
    /// True when a file of `size` bytes counts as small.
    pub fn is_small(&self, size: i64) -> bool {
        (size.max(0) as u64) < self.target_file_bytes / 2
    }

    /// True when the file of `entry` is worth compacting: small, or mostly
    /// deleted by its deletion vector.
    pub(crate) fn wants(&self, entry: &FileEntry) -> bool {
        self.is_small(entry.size) || mostly_deleted(entry)
    }

    /// True when a run is due: `min_small_files` files worth compacting, or
    /// one file mostly deleted by its deletion vector (purged on its own).
    pub(crate) fn due(&self, index: &FileIndex) -> bool {
        self.small_files(index) >= self.min_small_files || index.files.values().any(mostly_deleted)
    }

    /// How many of the index's data files are worth compacting (small, or
    /// mostly deleted by their deletion vector).
    pub(crate) fn small_files(&self, index: &FileIndex) -> usize {
        index.files.values().filter(|e| self.wants(e)).count()
    }
}

/// True when the deletion vector of `entry` deletes at least
/// [`PURGE_DELETED_FRACTION`] of its rows.
fn mostly_deleted(entry: &FileEntry) -> bool {
    let deleted = entry.deleted_rows().map_or(0, |d| d.len());
    deleted > 0 && entry.rows.is_some_and(|n| deleted as f64 >= PURGE_DELETED_FRACTION * n.max(1) as f64)
}

/// What one compaction did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactionStats {
    pub delta_version: i64,
    pub files_removed: usize,
    pub files_added: usize,
    pub bytes_removed: u64,
    pub bytes_written: u64,
    pub rows: u64,
    /// Commits of other writers this compaction's commit lost the race to.
    pub conflicts: usize,
}

/// The files a run takes: mostly deleted files first (one alone is a run:
/// it is purged), then small files in key order (by their lowest key) so that
/// neighbouring ranges end up together, up to `max_bytes_per_run` and
/// [`MAX_ROWS_PER_RUN`] (the first file is taken whatever its size); `None`
/// when no run is due. Small files alone need `min_small_files` of them.
fn choose(index: &FileIndex, options: &CompactionOptions) -> Option<Vec<(String, FileEntry)>> {
    if !options.due(index) {
        return None;
    }
    let mut wanted: Vec<(String, FileEntry)> =
        index.files.iter().filter(|(_, e)| options.wants(e)).map(|(p, e)| (p.clone(), e.clone())).collect();
    wanted.sort_by(|a, b| {
        let order = |e: &FileEntry| !mostly_deleted(e);
        order(&a.1)
            .cmp(&order(&b.1))
            .then(a.1.bounds.min.partial_cmp(&b.1.bounds.min).unwrap_or(std::cmp::Ordering::Equal))
    });
    let mut taken = Vec::new();
    let (mut bytes, mut rows) = (0u64, 0u64);
    for file in wanted {
        let live = file.1.live_rows().unwrap_or(0).max(0) as u64;
        if !taken.is_empty()
            && (bytes + file.1.size as u64 > options.max_bytes_per_run || rows + live > MAX_ROWS_PER_RUN)
        {
            break;
        }
        bytes += file.1.size as u64;
        rows += live;
        taken.push(file);
    }
    worth_a_run(taken.iter().map(|(_, e)| e)).then_some(taken)
}

/// Two files or more are combined; one alone is rewritten only to purge its deleted rows.
fn worth_a_run<'a>(mut files: impl Iterator<Item = &'a FileEntry>) -> bool {
    match (files.next(), files.next()) {
        (Some(_), Some(_)) => true,
        (Some(only), None) => mostly_deleted(only),
        _ => false,
    }
}

/// Plans one compaction run of the table at `table_dir` (`None`: nothing to do).
pub(crate) fn plan(
    table_dir: &Path,
    files: &crate::storage::TableFiles,
    layout: &TableLayout,
    index: &FileIndex,
    options: &CompactionOptions,
) -> Result<Option<Plan>, DeltaError> {
    let Some(inputs) = choose(index, options) else { return Ok(None) };
    let mut plan = Plan::default();
    for (path, entry) in &inputs {
        plan.actions.push(remove_file_action(path, entry, false));
        plan.removed.push(path.clone());
        plan.read.push(path.clone());
        plan.metrics.files_removed += 1;
    }
    match inputs.as_slice() {
        [(path, entry)] => purge(&mut plan, table_dir, files, layout, path, entry, options)?,
        _ => merge(&mut plan, table_dir, files, layout, &inputs, options)?,
    }
    // Compaction changes no row: its adds are not data changes either.
    for action in &mut plan.actions {
        if let Action::Add(add) = action {
            add.data_change = false;
        }
    }
    plan.rewrites = true;
    Ok(Some(plan))
}

/// Rewrites one mostly deleted file without its deleted rows, a read batch at
/// a time and in its own row order: memory holds one batch, however big the
/// file (a run's first file is taken whatever its size, e.g. a 1M-row
/// snapshot file; read whole and sorted, its purge set the peak RSS of the
/// random-update benchmark).
fn purge(
    plan: &mut Plan,
    table_dir: &Path,
    files: &crate::storage::TableFiles,
    layout: &TableLayout,
    path: &str,
    entry: &FileEntry,
    options: &CompactionOptions,
) -> Result<(), DeltaError> {
    let file_err = |e: crate::files::FileError| e.into_delta(table_dir);
    let rows_per_file = rows_per_file(options, entry.size as u64, entry.live_rows().unwrap_or(0).max(0) as usize);
    let mut offset = 0u64;
    let mut open: Option<OpenFile> = None;
    for batch in open_reader(files, path, WRITE_PIECE_ROWS).map_err(file_err)? {
        let batch = batch.map_err(|e| DeltaError::arrow(table_dir, "read a data file", e))?;
        let rows = batch.num_rows() as u64;
        let live = live_rows(table_dir, layout, batch, offset, entry)?;
        offset += rows;
        let mut start = 0;
        while start < live.num_rows() {
            let file = match open.as_mut() {
                Some(file) => file,
                None => {
                    let file = OpenFile::create(files, data_file_name(), layout, &layout.arrow).map_err(file_err)?;
                    plan.written.push(file.rel_path.clone());
                    open.insert(file)
                }
            };
            let take = (rows_per_file - file.rows() as usize).min(live.num_rows() - start);
            file.write(&live.slice(start, take), true).map_err(file_err)?;
            start += take;
            plan.rows_copied += take as u64;
            if file.rows() as usize >= rows_per_file {
                let full = open.take().expect("a file is open");
                push_add(plan, full.close().map_err(file_err)?);
            }
        }
    }
    if let Some(file) = open {
        push_add(plan, file.close().map_err(file_err)?);
    }
    Ok(())
}

/// Combines several files into new ones in primary-key order.
fn merge(
    plan: &mut Plan,
    table_dir: &Path,
    files: &crate::storage::TableFiles,
    layout: &TableLayout,
    inputs: &[(String, FileEntry)],
    options: &CompactionOptions,
) -> Result<(), DeltaError> {
    let file_err = |e: crate::files::FileError| e.into_delta(table_dir);
    let mut batches: Vec<RecordBatch> = Vec::new();
    let mut input_bytes = 0u64;
    for (path, entry) in inputs {
        let mut offset = 0u64;
        for batch in read_file(files, path).map_err(file_err)? {
            let rows = batch.num_rows() as u64;
            batches.push(live_rows(table_dir, layout, batch, offset, entry)?);
            offset += rows;
        }
        input_bytes += entry.size as u64;
    }
    // Rows are sorted by reference, not copied: the order is computed on the
    // key columns alone and each output piece is gathered from the inputs,
    // so memory holds the inputs' live rows once plus one piece.
    let order = key_order(&batches, layout).map_err(|e| DeltaError::Unsupported {
        table: table_dir.to_path_buf(),
        problem: format!("cannot sort rows by primary key for compaction: {e}"),
    })?;
    let rows = order.rows();
    let rows_per_file = rows_per_file(options, input_bytes, rows);
    let inputs: Vec<&RecordBatch> = batches.iter().collect();
    for file_start in (0..rows).step_by(rows_per_file) {
        let file_end = (file_start + rows_per_file).min(rows);
        let mut file = OpenFile::create(files, data_file_name(), layout, &layout.arrow).map_err(file_err)?;
        plan.written.push(file.rel_path.clone());
        for piece_start in (file_start..file_end).step_by(WRITE_PIECE_ROWS) {
            let piece = order.piece(piece_start..(piece_start + WRITE_PIECE_ROWS).min(file_end));
            let gathered = interleave_record_batch(&inputs, &piece)
                .map_err(|e| DeltaError::arrow(table_dir, "gather the rows of a compacted file", e))?;
            file.write(&gathered, true).map_err(file_err)?;
        }
        let written = file.close().map_err(file_err)?;
        push_add(plan, written);
    }
    plan.rows_copied = rows as u64;
    Ok(())
}

/// The live rows of `batch` (the rows of the data file `entry` from row
/// number `offset` on) in the current layout: a file written before a schema
/// change (a column added later, a type widened, another writer's physical
/// types) is written in the current layout, with the values every reader
/// sees in it.
fn live_rows(
    table_dir: &Path,
    layout: &TableLayout,
    batch: RecordBatch,
    offset: u64,
    entry: &FileEntry,
) -> Result<RecordBatch, DeltaError> {
    let live = drop_deleted_from(batch, offset, entry.deleted_rows())
        .map_err(|e| DeltaError::arrow(table_dir, "drop the rows a deletion vector deletes", e))?;
    crate::encode::conform(&live, &layout.arrow)
        .map_err(|e| DeltaError::arrow(table_dir, "conform a data file to the table schema", e))
}

/// Rows per new file so that files of `bytes` holding `rows` live rows come
/// out near the target size.
fn rows_per_file(options: &CompactionOptions, bytes: u64, rows: usize) -> usize {
    let bytes_per_row = (bytes as f64 / rows.max(1) as f64).max(1.0);
    ((options.target_file_bytes as f64 / bytes_per_row) as usize).max(1)
}

/// The rows of a run's input batches in the order they are written:
/// primary-key order (file order without a key), kept as row numbers over
/// all batches (4 bytes a row) and resolved to (batch, row) a piece at a time.
struct RowOrder {
    /// The row number each batch starts at.
    starts: Vec<usize>,
    /// Row numbers in output order; `None`: as read.
    sorted: Option<UInt32Array>,
    rows: usize,
}

impl RowOrder {
    fn rows(&self) -> usize {
        self.rows
    }

    /// (batch, row) of the output positions `range`.
    fn piece(&self, range: std::ops::Range<usize>) -> Vec<(usize, usize)> {
        range
            .map(|position| {
                let row = self.sorted.as_ref().map_or(position, |sorted| sorted.value(position) as usize);
                let batch = self.starts.partition_point(|&start| start <= row) - 1;
                (batch, row - self.starts[batch])
            })
            .collect()
    }
}

/// The write order of `batches`; only the key columns are concatenated to sort.
fn key_order(batches: &[RecordBatch], layout: &TableLayout) -> Result<RowOrder, deltalake::arrow::error::ArrowError> {
    let mut starts = Vec::with_capacity(batches.len());
    let mut rows = 0;
    for batch in batches {
        starts.push(rows);
        rows += batch.num_rows();
    }
    if !layout.has_pk() || rows == 0 {
        return Ok(RowOrder { starts, sorted: None, rows });
    }
    let mut columns = Vec::with_capacity(layout.pk.len());
    for &i in &layout.pk {
        let name = &layout.source.columns[i].name;
        let pieces: Vec<&dyn Array> =
            batches.iter().filter_map(|b| b.column_by_name(name)).map(|c| c.as_ref()).collect();
        columns.push(SortColumn { values: concat(&pieces)?, options: None });
    }
    Ok(RowOrder { starts, sorted: Some(lexsort_to_indices(&columns, None)?), rows })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::KeyBounds;

    fn index(sizes: &[i64]) -> FileIndex {
        let mut index = FileIndex::default();
        for (i, size) in sizes.iter().enumerate() {
            index.files.insert(
                format!("part-{i}.parquet"),
                FileEntry { size: *size, rows: Some(1), bounds: KeyBounds::unknown(1), deleted: None },
            );
        }
        index
    }

    #[test]
    fn only_enough_small_files_are_taken_and_a_run_stays_within_its_bytes() {
        let options = CompactionOptions { target_file_bytes: 1000, min_small_files: 3, max_bytes_per_run: 1000 };
        assert!(choose(&index(&[100, 100, 900, 900]), &options).is_none(), "two small files are not enough");
        let taken = choose(&index(&[100; 30]), &options).unwrap();
        assert_eq!(taken.len(), 10, "1000 bytes of 100-byte files");
        assert_eq!(options.small_files(&index(&[100, 499, 500, 2000])), 2);
    }

    #[test]
    fn a_run_stays_within_its_rows_but_takes_its_first_file_whatever_its_size() {
        let options = CompactionOptions { target_file_bytes: 1 << 30, min_small_files: 2, max_bytes_per_run: 1 << 30 };
        let mut many = index(&[100; 5]);
        for entry in many.files.values_mut() {
            entry.rows = Some(MAX_ROWS_PER_RUN as i64 / 2);
        }
        assert_eq!(choose(&many, &options).unwrap().len(), 2, "two halves of the row bound");
        for entry in many.files.values_mut() {
            entry.rows = Some(MAX_ROWS_PER_RUN as i64 * 3);
        }
        assert!(choose(&many, &options).is_none(), "one oversized small file alone is not a run");
    }

    #[test]
    fn one_mostly_deleted_file_is_a_run_of_its_own_and_goes_first() {
        let options = CompactionOptions { target_file_bytes: 1000, min_small_files: 16, max_bytes_per_run: 1 << 30 };
        let mut files = index(&[5000, 5000, 100]);
        assert!(choose(&files, &options).is_none(), "nothing due: one small file, two large ones");
        let deleted = |rows: std::ops::Range<u64>| {
            let descriptor = crate::deletion_vector::inline_descriptor(&[], rows.end - rows.start);
            std::sync::Arc::new(crate::deletion_vector::Deleted { descriptor, rows: rows.collect() })
        };
        let big = files.files.get_mut("part-1.parquet").unwrap();
        big.rows = Some(100);
        big.deleted = Some(deleted(0..24));
        assert!(!options.due(&files), "24 % deleted is below the purge fraction");
        files.files.get_mut("part-1.parquet").unwrap().deleted = Some(deleted(0..25));
        assert!(options.due(&files));
        let taken = choose(&files, &options).unwrap();
        assert_eq!(taken[0].0, "part-1.parquet", "the file to purge comes first");
    }
}
