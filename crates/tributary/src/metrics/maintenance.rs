//! Metrics of table maintenance (compaction, vacuum) and of commits that
//! lost a race against another writer: how many files a table has, how many
//! of them are small, what compaction and vacuum did and how long they took.
//! Registered into the pipeline's registry by [`super::Metrics`].

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};
use tributary_core::TableId;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TableLabels {
    table: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    operation: String,
}

fn labels(table: &TableId) -> TableLabels {
    TableLabels { table: table.to_string() }
}

/// The maintenance metric families.
#[derive(Clone)]
pub struct MaintenanceMetrics {
    files: Family<TableLabels, Gauge>,
    small_files: Family<TableLabels, Gauge>,
    compactions: Family<TableLabels, Counter>,
    compacted_bytes: Family<TableLabels, Counter>,
    vacuumed_files: Family<TableLabels, Counter>,
    vacuumed_bytes: Family<TableLabels, Counter>,
    duration: Family<OperationLabels, Histogram>,
    conflicts: Family<TableLabels, Counter>,
}

impl MaintenanceMetrics {
    /// Creates the families and registers them (names under the registry's `tributary` prefix).
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = MaintenanceMetrics {
            files: Family::default(),
            small_files: Family::default(),
            compactions: Family::default(),
            compacted_bytes: Family::default(),
            vacuumed_files: Family::default(),
            vacuumed_bytes: Family::default(),
            duration: Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.01, 2.0, 14))),
            conflicts: Family::default(),
        };
        registry.register("delta_table_files", "Active data files of the Delta table", metrics.files.clone());
        registry.register(
            "delta_table_small_files",
            "Active data files below half of maintenance.target_file_mb (what compaction combines)",
            metrics.small_files.clone(),
        );
        registry.register(
            "compactions",
            "Compaction commits of the table (small files rewritten into bigger ones, no data change)",
            metrics.compactions.clone(),
        );
        registry.register_with_unit(
            "compacted",
            "Bytes of small data files compaction rewrote",
            Unit::Bytes,
            metrics.compacted_bytes.clone(),
        );
        registry.register(
            "vacuum_deleted_files",
            "Files vacuum deleted (replaced data files, old change data, orphans) older than the retention",
            metrics.vacuumed_files.clone(),
        );
        registry.register_with_unit(
            "vacuum_deleted",
            "Bytes of the files vacuum deleted",
            Unit::Bytes,
            metrics.vacuumed_bytes.clone(),
        );
        registry.register_with_unit(
            "maintenance_duration",
            "Duration of one maintenance run of one table, by operation (compaction, vacuum)",
            Unit::Seconds,
            metrics.duration.clone(),
        );
        registry.register(
            "delta_commit_conflicts",
            "Commits of the table that lost the race against another writer's commit and were committed again or re-planned",
            metrics.conflicts.clone(),
        );
        metrics
    }

    /// The table's active and small data file counts.
    pub fn files(&self, table: &TableId, files: usize, small: usize) {
        self.files.get_or_create(&labels(table)).set(files as i64);
        self.small_files.get_or_create(&labels(table)).set(small as i64);
    }

    pub fn compacted(&self, table: &TableId, bytes: u64, seconds: f64) {
        self.compactions.get_or_create(&labels(table)).inc();
        self.compacted_bytes.get_or_create(&labels(table)).inc_by(bytes);
        self.duration.get_or_create(&OperationLabels { operation: "compaction".into() }).observe(seconds);
    }

    pub fn vacuumed(&self, table: &TableId, files: usize, bytes: u64, seconds: f64) {
        self.vacuumed_files.get_or_create(&labels(table)).inc_by(files as u64);
        self.vacuumed_bytes.get_or_create(&labels(table)).inc_by(bytes);
        self.duration.get_or_create(&OperationLabels { operation: "vacuum".into() }).observe(seconds);
    }

    pub fn conflicts(&self, table: &TableId, conflicts: usize) {
        if conflicts > 0 {
            self.conflicts.get_or_create(&labels(table)).inc_by(conflicts as u64);
        }
    }
}
