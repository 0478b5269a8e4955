//! Vacuum: deletes the files of a table that no version inside the retention
//! window references — data files that compaction or rewrites replaced,
//! change-data files older than the window, and orphans of failed writes
//! (files no commit ever named) older than it.
//!
//! Which files: delta-rs' vacuum plan in its full mode (it lists the table's
//! directory and keeps every file an active version or an unexpired
//! tombstone names, and anything newer than the window, so a batch's files
//! not committed yet are safe). Deleting them is done here: delta-rs' own
//! execution also writes `VACUUM START` / `VACUUM END` commits through a
//! commit path that refuses tables with Change Data Feed when built without
//! its datafusion feature (see `commit.rs`), and those commits are only an
//! audit trail. The files are deleted through the table's object store, so
//! the same code serves object storage.
//!
//! The retention may not be shorter than the table's
//! `delta.deletedFileRetentionDuration` (default 7 days): readers and writers
//! (Spark, streaming jobs, time travel) rely on files of that age existing.

use crate::DeltaError;
use deltalake::logstore::object_store::ObjectStoreExt as _;
use deltalake::operations::vacuum::VacuumMode;
use deltalake::table::config::TablePropertiesExt as _;
use std::path::Path;
use std::time::Duration;

/// How much history a vacuum keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VacuumOptions {
    /// Files unreferenced for less than this stay.
    pub retention: Duration,
    /// Only say what would be deleted.
    pub dry_run: bool,
}

/// What a vacuum deleted (or, dry run, would delete).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VacuumStats {
    /// Paths relative to the table directory.
    pub files: Vec<String>,
    pub bytes: u64,
    pub dry_run: bool,
}

/// Vacuums the table at `path` (see the module docs).
pub async fn vacuum(path: &Path, options: &VacuumOptions) -> Result<VacuumStats, DeltaError> {
    let table = crate::table::open_existing(path).await?;
    let log_store = table.log_store();
    let retention = chrono::Duration::from_std(options.retention).map_err(|_| DeltaError::Unsupported {
        table: path.to_path_buf(),
        problem: format!("vacuum retention {:?} is too long", options.retention),
    })?;
    let minimum = table
        .snapshot()
        .map_err(|e| DeltaError::delta(path, "read the table properties", e))?
        .table_config()
        .deleted_file_retention_duration();
    if options.retention < minimum {
        return Err(DeltaError::Unsupported {
            table: path.to_path_buf(),
            problem: format!(
                "vacuum retention {} h is shorter than the table's delta.deletedFileRetentionDuration ({} h): readers may still need those files; use a longer retention, or lower the table property after checking no reader time-travels that far",
                options.retention.as_secs() / 3600,
                minimum.as_secs() / 3600
            ),
        });
    }
    let (_, plan) = table
        .vacuum()
        .with_mode(VacuumMode::Full)
        .with_retention_period(retention)
        .with_enforce_retention_duration(false)
        .with_dry_run(true)
        .await
        .map_err(|e| DeltaError::delta(path, "plan the vacuum", e))?;
    let store = log_store.object_store(None);
    let mut stats = VacuumStats { dry_run: options.dry_run, ..VacuumStats::default() };
    for file in plan.files_deleted {
        let location = deltalake::Path::from(file.as_str());
        let size = match store.head(&location).await {
            Ok(meta) => meta.size,
            Err(deltalake::ObjectStoreError::NotFound { .. }) => continue,
            Err(e) => return Err(DeltaError::delta(path, "vacuum", e.into())),
        };
        if !options.dry_run {
            match store.delete(&location).await {
                Ok(()) | Err(deltalake::ObjectStoreError::NotFound { .. }) => {}
                Err(e) => return Err(DeltaError::delta(path, "vacuum", e.into())),
            }
        }
        stats.bytes += size;
        stats.files.push(crate::files::percent_decode(&file));
    }
    if !stats.files.is_empty() {
        tracing::info!(table = %path.display(), files = stats.files.len(), bytes = stats.bytes, dry_run = options.dry_run, "vacuum");
    }
    Ok(stats)
}
