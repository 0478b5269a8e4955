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
use crate::files::{data_file_name, drop_deleted, read_file, FileEntry, FileIndex, OpenFile};
use crate::schema::TableLayout;
use crate::DeltaError;
use deltalake::arrow::array::RecordBatch;
use deltalake::arrow::compute::{concat_batches, lexsort_to_indices, take_record_batch, SortColumn};
use deltalake::kernel::Action;
use std::path::Path;

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
        let deleted = entry.deleted_rows().map_or(0, |d| d.len());
        let mostly_deleted =
            deleted > 0 && entry.rows.is_some_and(|n| deleted as f64 >= PURGE_DELETED_FRACTION * n.max(1) as f64);
        self.is_small(entry.size) || mostly_deleted
    }

    /// How many of the index's data files are worth compacting (small, or
    /// mostly deleted by their deletion vector).
    pub(crate) fn small_files(&self, index: &FileIndex) -> usize {
        index.files.values().filter(|e| self.wants(e)).count()
    }
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

/// The small files a run takes: in key order (by their lowest key) so that
/// neighbouring ranges end up together, up to `max_bytes_per_run`; `None`
/// when fewer than `min_small_files` are small. Files written before the
/// table's current layout (other columns) are left as they are.
fn choose(index: &FileIndex, options: &CompactionOptions) -> Option<Vec<(String, FileEntry)>> {
    let mut small: Vec<(String, FileEntry)> =
        index.files.iter().filter(|(_, e)| options.wants(e)).map(|(p, e)| (p.clone(), e.clone())).collect();
    if small.len() < options.min_small_files.max(2) {
        return None;
    }
    small.sort_by(|a, b| a.1.bounds.min.partial_cmp(&b.1.bounds.min).unwrap_or(std::cmp::Ordering::Equal));
    let mut taken = Vec::new();
    let mut bytes = 0u64;
    for file in small {
        if !taken.is_empty() && bytes + file.1.size as u64 > options.max_bytes_per_run {
            break;
        }
        bytes += file.1.size as u64;
        taken.push(file);
    }
    (taken.len() >= 2).then_some(taken)
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
    let file_err = |e: crate::files::FileError| e.into_delta(table_dir);
    let mut batches: Vec<RecordBatch> = Vec::new();
    let mut plan = Plan::default();
    let mut input_bytes = 0u64;
    for (path, entry) in &inputs {
        let read = read_file(files, path).map_err(file_err)?;
        if read.iter().any(|b| b.schema().fields() != layout.arrow.fields()) {
            tracing::debug!(table = %table_dir.display(), file = %path, "file with an older layout left out of compaction");
            continue;
        }
        let live = drop_deleted(read, entry.deleted_rows())
            .map_err(|e| DeltaError::arrow(table_dir, "drop the rows a deletion vector deletes", e))?;
        batches.extend(live);
        plan.actions.push(remove_file_action(path, entry, false));
        plan.removed.push(path.clone());
        plan.read.push(path.clone());
        plan.metrics.files_removed += 1;
        input_bytes += entry.size as u64;
    }
    if plan.removed.len() < 2 {
        return Ok(None);
    }
    let all = concat_batches(&layout.arrow, &batches).map_err(|e| DeltaError::Unsupported {
        table: table_dir.to_path_buf(),
        problem: format!("cannot combine data files for compaction: {e}"),
    })?;
    drop(batches);
    let sorted = sort_by_key(&all, layout).map_err(|e| DeltaError::Unsupported {
        table: table_dir.to_path_buf(),
        problem: format!("cannot sort rows by primary key for compaction: {e}"),
    })?;
    drop(all);
    let rows = sorted.num_rows();
    let bytes_per_row = (input_bytes as f64 / rows.max(1) as f64).max(1.0);
    let rows_per_file = ((options.target_file_bytes as f64 / bytes_per_row) as usize).max(1);
    let mut offset = 0;
    while offset < rows {
        let len = rows_per_file.min(rows - offset);
        let mut file = OpenFile::create(files, data_file_name(), layout, &layout.arrow).map_err(file_err)?;
        plan.written.push(file.rel_path.clone());
        file.write(&sorted.slice(offset, len), true).map_err(file_err)?;
        let written = file.close().map_err(file_err)?;
        push_add(&mut plan, written);
        offset += len;
    }
    // Compaction changes no row: its adds are not data changes either.
    for action in &mut plan.actions {
        if let Action::Add(add) = action {
            add.data_change = false;
        }
    }
    plan.rewrites = true;
    plan.rows_copied = rows as u64;
    Ok(Some(plan))
}

/// `batch` ordered by the table's primary key (unchanged without one).
fn sort_by_key(batch: &RecordBatch, layout: &TableLayout) -> Result<RecordBatch, deltalake::arrow::error::ArrowError> {
    if !layout.has_pk() {
        return Ok(batch.clone());
    }
    let columns: Vec<SortColumn> = layout
        .pk
        .iter()
        .filter_map(|&i| batch.column_by_name(&layout.source.columns[i].name))
        .map(|values| SortColumn { values: values.clone(), options: None })
        .collect();
    let indices = lexsort_to_indices(&columns, None)?;
    take_record_batch(batch, &indices)
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
}
