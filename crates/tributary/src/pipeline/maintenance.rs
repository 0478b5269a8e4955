//! Table maintenance inside `tributary run`, between batches: every
//! `check_interval_secs` each table with `min_small_files` small data files,
//! or a file whose deletion vector deletes a quarter of it or more (purged),
//! is compacted on its own writer (so compaction and the pipeline's
//! streaming commits never conflict), and every `vacuum_interval_secs` each
//! table is vacuumed with `vacuum_retention_hours`, which is also recorded as
//! the table's `delta.deletedFileRetentionDuration`. A failed compaction or
//! vacuum is logged and counted and tried again later; it never stops
//! streaming. `tributary optimize` / `tributary vacuum` do the same on demand.

use super::writers::TableWriters;
use crate::config::MaintenanceConfig;
use crate::metrics::registry::ErrorKind;
use crate::metrics::Metrics;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};
use tributary_core::TableId;
use tributary_delta::{CompactionOptions, VacuumOptions};

/// When each table was last looked after.
pub struct Maintenance {
    config: MaintenanceConfig,
    compaction: CompactionOptions,
    last_check: Instant,
    last_vacuum: BTreeMap<TableId, Instant>,
    /// Tables whose retention property is set.
    prepared: BTreeSet<TableId>,
}

impl Maintenance {
    pub fn new(config: &MaintenanceConfig) -> Self {
        Maintenance {
            compaction: config.compaction_options(),
            config: config.clone(),
            // The first look comes one interval after the start.
            last_check: Instant::now(),
            last_vacuum: BTreeMap::new(),
            prepared: BTreeSet::new(),
        }
    }

    /// Exports every active table's file counts (at start; each pass updates them).
    pub fn report_files(&self, writers: &mut TableWriters) {
        let metrics = writers.metrics().clone();
        for (id, writer) in writers.active_mut() {
            metrics.maintenance().files(id, writer.file_count(), writer.small_file_count(&self.compaction));
        }
    }

    /// True when a maintenance pass is due.
    pub fn due(&self) -> bool {
        self.last_check.elapsed() >= Duration::from_secs(self.config.check_interval_secs)
    }

    /// One pass over every active table: file counts, compaction, vacuum when due.
    pub async fn run(&mut self, writers: &mut TableWriters) {
        self.last_check = Instant::now();
        let metrics = writers.metrics().clone();
        for (id, writer) in writers.active_mut() {
            if self.config.vacuum && !self.prepared.contains(id) {
                match writer.keep_unreferenced_files_for(self.config.vacuum_retention()).await {
                    Ok(changed) => {
                        if changed {
                            tracing::info!(table = %id, hours = self.config.vacuum_retention_hours,
                                "recorded the vacuum retention as delta.deletedFileRetentionDuration");
                        }
                        self.prepared.insert(id.clone());
                    }
                    Err(e) => warn(&metrics, id, "record the vacuum retention", &e),
                }
            }
            if self.config.compaction && writer.compaction_due(&self.compaction) {
                let started = Instant::now();
                match writer.compact_with(&self.compaction, &super::failpoint::in_compaction).await {
                    Ok(Some(done)) => {
                        metrics.maintenance().compacted(id, done.bytes_removed, started.elapsed().as_secs_f64());
                        metrics.maintenance().conflicts(id, done.conflicts);
                        tracing::info!(table = %id, files_removed = done.files_removed, files_added = done.files_added,
                            bytes = done.bytes_removed, rows = done.rows, version = done.delta_version,
                            ms = started.elapsed().as_millis() as u64, "compacted small files");
                    }
                    Ok(None) => {}
                    Err(e) => warn(&metrics, id, "compaction", &e),
                }
            }
            metrics.maintenance().files(id, writer.file_count(), writer.small_file_count(&self.compaction));
            let vacuum_due = self
                .last_vacuum
                .get(id)
                .is_none_or(|t| t.elapsed() >= Duration::from_secs(self.config.vacuum_interval_secs));
            if self.config.vacuum && vacuum_due && self.prepared.contains(id) {
                self.last_vacuum.insert(id.clone(), Instant::now());
                let started = Instant::now();
                let options = VacuumOptions { retention: self.config.vacuum_retention(), dry_run: false };
                match tributary_delta::vacuum(writer.path(), &options).await {
                    Ok(done) => {
                        if !done.files.is_empty() {
                            tracing::info!(table = %id, files = done.files.len(), bytes = done.bytes,
                                ms = started.elapsed().as_millis() as u64, "vacuumed unreferenced files");
                        }
                        metrics.maintenance().vacuumed(
                            id,
                            done.files.len(),
                            done.bytes,
                            started.elapsed().as_secs_f64(),
                        )
                    }
                    Err(e) => warn(&metrics, id, "vacuum", &e),
                }
            }
        }
    }
}

fn warn(metrics: &Metrics, table: &TableId, what: &str, error: &dyn std::fmt::Display) {
    metrics.error(ErrorKind::sink);
    tracing::warn!(table = %table, error = %error, "{what} failed; streaming goes on and it is tried again later");
}
