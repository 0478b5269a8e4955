//! Durability of what a commit wrote: the fsyncs that make a Delta commit
//! survive an OS crash or a power loss before anything is acknowledged upstream
//! (the PostgreSQL slot confirmed, a MySQL position treated as stored).
//!
//! On local disk a file written through `std::fs` or object_store's
//! `LocalFileSystem` sits in the page cache until the kernel writes it back;
//! its name sits in its directory, which must be synced too. So every commit
//! syncs, before the log entry is written, each new data and change-data file
//! named by its `add` / `cdc` actions, each deletion-vector file an `add`
//! names, and each distinct directory holding them
//! (the table directory, `_change_data`); once delta-rs has written the log
//! entry, it syncs the entry and `_delta_log`. A checkpoint syncs its parquet
//! file(s), `_last_checkpoint` and `_delta_log`. Each file and directory is
//! synced once per commit. Only then does the commit count as durable.
//!
//! All of it lives here so that the move to object storage stays small: on
//! S3 and the like the PUT's acknowledgement is the durability, and these
//! functions do nothing for a table whose location is not a local path.

use deltalake::kernel::Action;
use deltalake::{DeltaTable, DeltaTableError};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Name of the transaction log folder.
const DELTA_LOG: &str = "_delta_log";

/// The table's local directory; `None` for a table on object storage (its
/// PUTs are durable when acknowledged).
pub(crate) fn local_dir(table: &DeltaTable) -> Option<PathBuf> {
    let url = table.table_url();
    if url.scheme() != "file" {
        return None;
    }
    url.to_file_path().ok()
}

/// Syncs the new files named by `actions` (`add` and `cdc`, and the
/// deletion-vector files of `add`s; in parallel) and then the directories
/// holding them, up to and including `table_dir`.
pub(crate) fn sync_new_files(table_dir: &Path, actions: &[Action]) -> Result<(), DeltaTableError> {
    let mut files = BTreeSet::new();
    let mut dirs = BTreeSet::new();
    let mut named = Vec::new();
    for action in actions {
        match action {
            Action::Add(add) => {
                named.push(crate::files::resolve(table_dir, &crate::files::percent_decode(&add.path)));
                if let Some(dv) = &add.deletion_vector {
                    let file = crate::deletion_vector::file_path(table_dir, dv).map_err(DeltaTableError::Generic)?;
                    named.extend(file);
                }
            }
            Action::Cdc(cdc) => named.push(crate::files::resolve(table_dir, &crate::files::percent_decode(&cdc.path))),
            _ => {}
        }
    }
    for file in named {
        let mut dir = file.parent();
        while let Some(d) = dir {
            dirs.insert(d.to_path_buf());
            if d == table_dir || !d.starts_with(table_dir) {
                break;
            }
            dir = d.parent();
        }
        files.insert(file);
    }
    sync_parallel(&files.into_iter().collect::<Vec<_>>())?;
    for dir in &dirs {
        sync(dir)?;
    }
    Ok(())
}

/// Most fsyncs in flight at once: concurrent fsyncs share the file
/// system's journal commits (on this project's test machine 32 files took
/// ~90 ms one after the other, ~15 – 50 ms four at a time).
const PARALLEL_SYNCS: usize = 4;

fn sync_parallel(paths: &[PathBuf]) -> Result<(), DeltaTableError> {
    if paths.len() <= 1 {
        return paths.iter().try_for_each(|p| sync(p));
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let workers = paths.len().min(PARALLEL_SYNCS);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    match paths.get(i) {
                        Some(path) => sync(path)?,
                        None => return Ok(()),
                    }
                })
            })
            .collect();
        handles.into_iter().try_for_each(|h| h.join().expect("an fsync thread panicked"))
    })
}

/// Syncs the log entry of `version` and `_delta_log`.
pub(crate) fn sync_log_entry(table_dir: &Path, version: i64) -> Result<(), DeltaTableError> {
    let log = table_dir.join(DELTA_LOG);
    sync(&log.join(format!("{version:020}.json")))?;
    sync(&log)
}

/// Syncs the checkpoint of `version` (every file of it), `_last_checkpoint` and `_delta_log`.
pub(crate) fn sync_checkpoint(table_dir: &Path, version: i64) -> Result<(), DeltaTableError> {
    let log = table_dir.join(DELTA_LOG);
    let prefix = format!("{version:020}.checkpoint");
    let entries = std::fs::read_dir(&log).map_err(|e| failed(&log, e))?;
    let mut synced = 0;
    for entry in entries {
        let entry = entry.map_err(|e| failed(&log, e))?;
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            sync(&entry.path())?;
            synced += 1;
        }
    }
    if synced == 0 {
        return Err(DeltaTableError::Generic(format!("no checkpoint file {prefix}* in {}", log.display())));
    }
    let last = log.join("_last_checkpoint");
    if last.exists() {
        sync(&last)?;
    }
    sync(&log)
}

/// Syncs `dir` and each directory above it up to the one holding `root`
/// (the entries of directories just created: the table's, its schema's, the
/// root's). Cheap enough to do whenever a table is opened.
pub(crate) fn sync_dirs_up_to(dir: &Path, root: &Path) -> Result<(), DeltaTableError> {
    let mut current = Some(dir);
    while let Some(d) = current {
        if d.as_os_str().is_empty() {
            break;
        }
        sync(d)?;
        if !d.starts_with(root) {
            break;
        }
        current = d.parent();
    }
    Ok(())
}

/// fsync of one file or directory. A failure is fatal for the commit: after
/// a failed fsync the kernel may have dropped the dirty pages, so a retry
/// that succeeds proves nothing.
fn sync(path: &Path) -> Result<(), DeltaTableError> {
    let file = std::fs::File::open(path).map_err(|e| failed(path, e))?;
    file.sync_all().map_err(|e| failed(path, e))?;
    #[cfg(test)]
    record::push(path);
    Ok(())
}

fn failed(path: &Path, e: std::io::Error) -> DeltaTableError {
    DeltaTableError::Generic(format!("fsync {}: {e}; the commit is not known to be durable", path.display()))
}

/// What was synced, in order, for the tests (each filters by its own temp directory).
#[cfg(test)]
pub(crate) mod record {
    use std::path::{Path, PathBuf};
    use std::sync::Mutex;

    static SYNCED: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

    pub(super) fn push(path: &Path) {
        SYNCED.lock().unwrap().push(path.to_path_buf());
    }

    /// Every path synced so far below `root`, in the order of the syncs.
    pub(crate) fn below(root: &Path) -> Vec<PathBuf> {
        SYNCED.lock().unwrap().iter().filter(|p| p.starts_with(root)).cloned().collect()
    }
}
