//! The metric families of a running pipeline, behind one cheap-to-clone
//! handle (`Metrics`) that the runner, the writers and the snapshot update.
//! Names and labels are documented in docs/metrics.md.

use super::validation::ValidationSource;
use crate::pipeline::snapshot::now_micros;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use tributary_core::{SourcePosition, TableId};

/// `tributary_pipeline_state{state}`: exactly one state is 1.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum PipelineState {
    Starting,
    Snapshot,
    Streaming,
    Stopping,
}

impl PipelineState {
    pub fn as_str(self) -> &'static str {
        match self {
            PipelineState::Starting => "starting",
            PipelineState::Snapshot => "snapshot",
            PipelineState::Streaming => "streaming",
            PipelineState::Stopping => "stopping",
        }
    }

    const ALL: [PipelineState; 4] =
        [PipelineState::Starting, PipelineState::Snapshot, PipelineState::Streaming, PipelineState::Stopping];
}

impl EncodeLabelValue for PipelineState {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.as_str(), encoder)
    }
}

/// Change operations as labelled in `tributary_events_total{op}`.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum Op {
    insert,
    update,
    delete,
    truncate,
}

/// Error kinds of `tributary_errors_total{kind}`.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum ErrorKind {
    /// Reading the binlog or the source failed.
    source,
    /// A Delta commit failed.
    sink,
    /// The initial snapshot failed.
    snapshot,
    /// A source schema change the Delta table cannot follow stopped a table.
    schema,
}

impl ErrorKind {
    const ALL: [ErrorKind; 4] = [ErrorKind::source, ErrorKind::sink, ErrorKind::snapshot, ErrorKind::schema];
}

/// Parts of `tributary_committed_position{part}`.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
enum Part {
    file_index,
    offset,
    /// PostgreSQL: the LSN as a number.
    lsn,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TableLabels {
    table: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    table: String,
    op: Op,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PositionLabels {
    table: String,
    part: Part,
}

/// Kinds of `tributary_validation_differences{kind}`.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
enum DifferenceKind {
    missing,
    extra,
    different,
    schema,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DifferenceLabels {
    table: String,
    kind: DifferenceKind,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: PipelineState,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SchemaChangeLabels {
    table: String,
    change: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    kind: ErrorKind,
}

/// Source lag bookkeeping (commit timestamps in microseconds since the epoch).
#[derive(Debug, Default)]
struct Lag {
    /// Commit time of the newest source transaction read.
    read_ts: i64,
    /// Commit time of the newest source transaction committed to Delta.
    applied_ts: i64,
    /// While changes are read but not yet committed: the commit time the lag counts from.
    pending_since: Option<i64>,
}

struct Inner {
    registry: Registry,
    events: Family<EventLabels, Counter>,
    source_lag: Gauge<f64, AtomicU64>,
    commit_duration: Histogram,
    rows_written: Family<TableLabels, Counter>,
    bytes_written: Family<TableLabels, Counter>,
    table_version: Family<TableLabels, Gauge>,
    committed_position: Family<PositionLabels, Gauge>,
    snapshot_rows: Family<TableLabels, Counter>,
    snapshot_expected: Family<TableLabels, Gauge>,
    errors: Family<ErrorLabels, Counter>,
    binlog_files: Gauge,
    source_connected: Gauge,
    source_reconnects: Counter,
    binlog_oldest: Gauge,
    slot_retained_wal: Gauge,
    schema_changes: Family<SchemaChangeLabels, Counter>,
    table_stopped: Family<TableLabels, Gauge>,
    state: Family<StateLabels, Gauge>,
    current_state: Mutex<PipelineState>,
    lag: Mutex<Lag>,
    validation_passed: Family<TableLabels, Gauge>,
    validation_differences: Family<DifferenceLabels, Gauge>,
    validation_last_run: Gauge<f64, AtomicU64>,
    validation: ValidationSource,
    /// Held while derived values are refreshed and encoded, so concurrent scrapes never see half a refresh.
    scrape: Mutex<()>,
    /// What `/healthz` and `/readyz` answer besides the state.
    health: super::health::Health,
    maintenance: super::maintenance::MaintenanceMetrics,
}

/// The pipeline's metrics; clones share the same values.
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("tributary");
        let events = Family::<EventLabels, Counter>::default();
        registry.register("events", "Row change events read from the source, per table and operation", events.clone());
        let source_lag = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "source_lag_seconds",
            "Seconds since the source commit of the oldest change read but not yet committed to Delta; 0 when caught up",
            source_lag.clone(),
        );
        let commit_duration = Histogram::new(exponential_buckets(0.005, 2.0, 14));
        registry.register(
            "delta_commit_duration_seconds",
            "Duration of one Delta commit of one table (data files, change-data files and log entry)",
            commit_duration.clone(),
        );
        let rows_written = Family::<TableLabels, Counter>::default();
        registry.register(
            "rows_written",
            "Rows written to the Delta table with new content (inserts, after-images, snapshot rows)",
            rows_written.clone(),
        );
        let bytes_written = Family::<TableLabels, Counter>::default();
        registry.register(
            "bytes_written",
            "Bytes of data and change-data files written to the Delta table",
            bytes_written.clone(),
        );
        let table_version = Family::<TableLabels, Gauge>::default();
        registry.register("delta_table_version", "Current version of the Delta table", table_version.clone());
        let committed_position = Family::<PositionLabels, Gauge>::default();
        registry.register(
            "committed_position",
            "Source position the Delta table holds: binlog file index and offset (MySQL), or LSN (PostgreSQL)",
            committed_position.clone(),
        );
        let snapshot_rows = Family::<TableLabels, Counter>::default();
        registry.register("snapshot_rows", "Rows copied by the initial snapshot", snapshot_rows.clone());
        let snapshot_expected = Family::<TableLabels, Gauge>::default();
        registry.register(
            "snapshot_rows_expected",
            "The source's row estimate for the table when its snapshot started",
            snapshot_expected.clone(),
        );
        let errors = Family::<ErrorLabels, Counter>::default();
        registry.register("errors", "Errors by kind", errors.clone());
        let source_connected = Gauge::default();
        registry.register(
            "source_connected",
            "1 while the pipeline streams from the source, 0 while it is reconnecting",
            source_connected.clone(),
        );
        let source_reconnects = Counter::default();
        registry.register(
            "source_reconnects",
            "Times the source connection was lost while streaming and the pipeline reconnected (or tried to)",
            source_reconnects.clone(),
        );
        let binlog_files = Gauge::default();
        registry.register(
            "mysql_binlog_files_retained",
            "Binary log files the source server still holds (SHOW BINARY LOGS), sampled every minute",
            binlog_files.clone(),
        );
        let binlog_oldest = Gauge::default();
        registry.register(
            "mysql_binlog_oldest_file_index",
            "Index (numeric suffix) of the oldest binary log file the source server still holds, sampled every minute",
            binlog_oldest.clone(),
        );
        let slot_retained_wal = Gauge::default();
        registry.register_with_unit(
            "postgres_slot_retained_wal",
            "WAL the source server keeps for the replication slot (current WAL LSN minus the slot's restart_lsn)",
            prometheus_client::registry::Unit::Bytes,
            slot_retained_wal.clone(),
        );
        let schema_changes = Family::<SchemaChangeLabels, Counter>::default();
        registry.register(
            "schema_changes",
            "Source schema changes the Delta table followed, per table and kind of change",
            schema_changes.clone(),
        );
        let table_stopped = Family::<TableLabels, Gauge>::default();
        registry.register(
            "table_stopped",
            "1 while the table is stopped by a schema change its Delta table cannot follow",
            table_stopped.clone(),
        );
        let state = Family::<StateLabels, Gauge>::default();
        registry.register("pipeline_state", "1 for the pipeline's current state, 0 for the others", state.clone());
        let validation_passed = Family::<TableLabels, Gauge>::default();
        registry.register(
            "validation_passed",
            "1 when the table passed the last `tributary validate`, 0 when it failed",
            validation_passed.clone(),
        );
        let validation_differences = Family::<DifferenceLabels, Gauge>::default();
        registry.register(
            "validation_differences",
            "Differences the last `tributary validate` found: rows missing in / extra in / different in Delta, schema problems",
            validation_differences.clone(),
        );
        let validation_last_run = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "validation_last_run_timestamp_seconds",
            "When the last `tributary validate` of this pipeline's tables finished; 0 when none ran",
            validation_last_run.clone(),
        );
        for kind in ErrorKind::ALL {
            let _ = errors.get_or_create(&ErrorLabels { kind });
        }
        let maintenance = super::maintenance::MaintenanceMetrics::register(&mut registry);
        let metrics = Metrics(Arc::new(Inner {
            registry,
            events,
            source_lag,
            commit_duration,
            rows_written,
            bytes_written,
            table_version,
            committed_position,
            snapshot_rows,
            snapshot_expected,
            errors,
            binlog_files,
            source_connected,
            source_reconnects,
            binlog_oldest,
            slot_retained_wal,
            schema_changes,
            table_stopped,
            state,
            current_state: Mutex::new(PipelineState::Starting),
            lag: Mutex::new(Lag::default()),
            validation_passed,
            validation_differences,
            validation_last_run,
            validation: ValidationSource::default(),
            scrape: Mutex::new(()),
            health: super::health::Health::default(),
            maintenance,
        }));
        metrics.set_state(PipelineState::Starting);
        metrics
    }

    /// Makes `state` the current one.
    pub fn set_state(&self, state: PipelineState) {
        *self.0.current_state.lock().unwrap() = state;
        if state == PipelineState::Stopping {
            self.0.health.set_shutting_down();
        }
        for s in PipelineState::ALL {
            self.0.state.get_or_create(&StateLabels { state: s }).set(i64::from(s == state));
        }
    }

    pub fn state(&self) -> PipelineState {
        *self.0.current_state.lock().unwrap()
    }

    /// `count` change events of one table and operation were read.
    pub fn events(&self, table: &TableId, op: Op, count: u64) {
        self.0.events.get_or_create(&EventLabels { table: table.to_string(), op }).inc_by(count);
    }

    /// A source transaction committed at `commit_ts` (µs) was read.
    pub fn source_read(&self, commit_ts: i64) {
        let mut lag = self.0.lag.lock().unwrap();
        if commit_ts <= 0 {
            return;
        }
        lag.read_ts = lag.read_ts.max(commit_ts);
        if lag.pending_since.is_none() && commit_ts > lag.applied_ts {
            lag.pending_since = Some(commit_ts);
        }
    }

    /// Everything read up to a source commit at `commit_ts` (µs) is in Delta.
    pub fn source_applied(&self, commit_ts: i64) {
        let mut lag = self.0.lag.lock().unwrap();
        lag.applied_ts = lag.applied_ts.max(commit_ts);
        lag.pending_since = if lag.read_ts > lag.applied_ts { Some(lag.applied_ts) } else { None };
    }

    /// One Delta commit of one table took `seconds`.
    pub fn commit(&self, seconds: f64) {
        self.0.commit_duration.observe(seconds);
    }

    /// Rows and bytes a commit wrote, and the version and position the table now holds.
    pub fn table_written(&self, table: &TableId, rows: u64, bytes: u64) {
        let labels = TableLabels { table: table.to_string() };
        self.0.rows_written.get_or_create(&labels).inc_by(rows);
        self.0.bytes_written.get_or_create(&labels).inc_by(bytes);
    }

    /// The Delta version and the committed source position of a table.
    pub fn table_state(&self, table: &TableId, version: i64, position: Option<&SourcePosition>) {
        let name = table.to_string();
        let labels = TableLabels { table: name.clone() };
        self.0.table_version.get_or_create(&labels).set(version);
        // Make the per-table counters visible (at 0) before the first commit.
        let _ = self.0.table_stopped.get_or_create(&labels);
        let _ = self.0.rows_written.get_or_create(&labels);
        let _ = self.0.bytes_written.get_or_create(&labels);
        match position {
            Some(SourcePosition::MySql(position)) => {
                for (part, value) in [(Part::file_index, position.file_index()), (Part::offset, position.offset)] {
                    let labels = PositionLabels { table: name.clone(), part };
                    self.0.committed_position.get_or_create(&labels).set(value as i64);
                }
            }
            Some(SourcePosition::Postgres { lsn }) => {
                let labels = PositionLabels { table: name, part: Part::lsn };
                self.0.committed_position.get_or_create(&labels).set(lsn.0 as i64);
            }
            None => {}
        }
    }

    /// The snapshot of `table` starts; the source estimates `expected` rows.
    pub fn snapshot_started(&self, table: &TableId, expected: u64) {
        let labels = TableLabels { table: table.to_string() };
        self.0.snapshot_expected.get_or_create(&labels).set(expected as i64);
        let _ = self.0.snapshot_rows.get_or_create(&labels);
    }

    /// The snapshot copied `rows` more rows of `table`.
    pub fn snapshot_rows(&self, table: &TableId, rows: u64) {
        self.0.snapshot_rows.get_or_create(&TableLabels { table: table.to_string() }).inc_by(rows);
    }

    pub fn error(&self, kind: ErrorKind) {
        self.0.errors.get_or_create(&ErrorLabels { kind }).inc();
    }

    /// The Delta table of `table` followed a source schema change of kind `change`.
    pub fn schema_change(&self, table: &TableId, change: &str) {
        let labels = SchemaChangeLabels { table: table.to_string(), change: change.to_string() };
        self.0.schema_changes.get_or_create(&labels).inc();
    }

    /// `table` stopped for `reason` (a schema change its Delta table cannot follow).
    pub fn table_stopped(&self, table: &TableId, reason: &str) {
        self.0.table_stopped.get_or_create(&TableLabels { table: table.to_string() }).set(1);
        self.0.health.table_stopped(&table.to_string(), reason);
    }

    /// The pipeline's health (`/healthz`, `/readyz`).
    pub fn maintenance(&self) -> &super::maintenance::MaintenanceMetrics {
        &self.0.maintenance
    }

    pub fn health(&self) -> &super::health::Health {
        &self.0.health
    }

    /// Bytes of WAL the server retains for the PostgreSQL replication slot.
    pub fn slot_retained_wal(&self, bytes: u64) {
        self.0.slot_retained_wal.set(bytes as i64);
    }

    /// What `SHOW BINARY LOGS` lists: the number of files and the oldest file's index.
    /// Whether the pipeline is streaming from the source (false while reconnecting).
    pub fn source_connected(&self, connected: bool) {
        self.0.source_connected.set(i64::from(connected));
    }

    /// One lost source connection the pipeline reconnects from.
    pub fn source_reconnect(&self) {
        self.0.source_reconnects.inc();
    }

    pub fn binlog_files(&self, files: u64, oldest_index: u64) {
        self.0.binlog_files.set(files as i64);
        self.0.binlog_oldest.set(oldest_index as i64);
    }

    /// Export the `tributary validate` result recorded at `path` (read at every scrape).
    pub fn export_validation(&self, path: PathBuf) {
        self.0.validation.set_path(path);
    }

    /// The text exposition of every family, derived values refreshed first.
    pub fn encode(&self) -> String {
        let _scrape = self.0.scrape.lock().unwrap_or_else(|e| e.into_inner());
        self.refresh_lag(now_micros());
        self.refresh_validation();
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.0.registry)
            .expect("writing to a String never fails");
        text
    }

    fn refresh_validation(&self) {
        let inner = &self.0;
        inner.validation_passed.clear();
        inner.validation_differences.clear();
        let Some(file) = inner.validation.current() else {
            inner.validation_last_run.set(0.0);
            return;
        };
        inner.validation_last_run.set(file.timestamp);
        for t in &file.tables {
            inner.validation_passed.get_or_create(&TableLabels { table: t.table.clone() }).set(i64::from(t.passed));
            for (kind, n) in [
                (DifferenceKind::missing, t.missing),
                (DifferenceKind::extra, t.extra),
                (DifferenceKind::different, t.different),
                (DifferenceKind::schema, t.schema_problems),
            ] {
                let labels = DifferenceLabels { table: t.table.clone(), kind };
                inner.validation_differences.get_or_create(&labels).set(n as i64);
            }
        }
    }

    fn refresh_lag(&self, now: i64) {
        let lag = self.0.lag.lock().unwrap();
        let seconds = lag.pending_since.map(|since| ((now - since).max(0) as f64) / 1e6).unwrap_or(0.0);
        self.0.source_lag.set(seconds);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(text: &str, series: &str) -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
            .unwrap_or_else(|| panic!("{series} missing in:\n{text}"))
            .parse()
            .unwrap()
    }

    #[test]
    fn families_follow_the_naming_conventions() {
        let m = Metrics::new();
        let t = TableId::new("shop", "orders");
        m.events(&t, Op::insert, 1);
        m.events(&t, Op::insert, 1);
        m.table_state(&t, 3, Some(&SourcePosition::MySql(tributary_core::MySqlPosition::new("bin.000007", 1234))));
        m.table_written(&t, 10, 999);
        m.commit(0.02);
        let text = m.encode();
        assert_eq!(value(&text, r#"tributary_events_total{table="shop.orders",op="insert"}"#), 2.0);
        assert_eq!(value(&text, r#"tributary_rows_written_total{table="shop.orders"}"#), 10.0);
        assert_eq!(value(&text, r#"tributary_bytes_written_total{table="shop.orders"}"#), 999.0);
        assert_eq!(value(&text, r#"tributary_delta_table_version{table="shop.orders"}"#), 3.0);
        assert_eq!(value(&text, r#"tributary_committed_position{table="shop.orders",part="file_index"}"#), 7.0);
        assert_eq!(value(&text, r#"tributary_committed_position{table="shop.orders",part="offset"}"#), 1234.0);
        assert_eq!(value(&text, "tributary_delta_commit_duration_seconds_count"), 1.0);
        assert_eq!(value(&text, r#"tributary_pipeline_state{state="starting"}"#), 1.0);
        assert_eq!(value(&text, r#"tributary_pipeline_state{state="streaming"}"#), 0.0);
        assert_eq!(value(&text, r#"tributary_errors_total{kind="sink"}"#), 0.0);
        assert_eq!(value(&text, "tributary_source_lag_seconds"), 0.0);
        assert_eq!(value(&text, "tributary_validation_last_run_timestamp_seconds"), 0.0);
        assert!(!text.contains("tributary_validation_passed{"), "no validation result, no per-table series");
    }

    #[test]
    fn the_validation_result_is_read_at_scrape_time() {
        use super::super::validation::{file_path, TableResult, ValidationFile};
        let dir = tempfile::tempdir().unwrap();
        let path = file_path(dir.path());
        let m = Metrics::new();
        m.export_validation(path.clone());
        assert!(!m.encode().contains("tributary_validation_passed{"), "no file yet");
        let table = |name: &str, passed: bool, missing: u64, different: u64| TableResult {
            table: name.into(),
            passed,
            status: if passed { "passed" } else { "failed" }.into(),
            source_rows: Some(10),
            delta_rows: Some(10 - missing),
            missing,
            extra: 0,
            different,
            schema_problems: 0,
            problems: 0,
            lag_secs: None,
            timestamp: 1_700_000_000.0,
        };
        let file = ValidationFile {
            timestamp: 1_700_000_000.0,
            outcome: "failed".into(),
            exit_code: 1,
            tables: vec![table("shop.a", false, 1, 2), table("shop.b", true, 0, 0)],
        };
        file.write(&path).unwrap();
        let text = m.encode();
        assert_eq!(value(&text, r#"tributary_validation_passed{table="shop.a"}"#), 0.0);
        assert_eq!(value(&text, r#"tributary_validation_passed{table="shop.b"}"#), 1.0);
        assert_eq!(value(&text, r#"tributary_validation_differences{table="shop.a",kind="missing"}"#), 1.0);
        assert_eq!(value(&text, r#"tributary_validation_differences{table="shop.a",kind="different"}"#), 2.0);
        assert_eq!(value(&text, r#"tributary_validation_differences{table="shop.a",kind="schema"}"#), 0.0);
        assert_eq!(value(&text, "tributary_validation_last_run_timestamp_seconds"), 1_700_000_000.0);
        // A table no longer in the result disappears; a removed file clears everything.
        ValidationFile { tables: vec![table("shop.b", true, 0, 0)], ..file }.write(&path).unwrap();
        let text = m.encode();
        assert!(!text.contains(r#"table="shop.a""#), "{text}");
        std::fs::remove_file(&path).unwrap();
        let text = m.encode();
        assert!(!text.contains("tributary_validation_passed{"), "{text}");
        assert_eq!(value(&text, "tributary_validation_last_run_timestamp_seconds"), 0.0);
    }

    #[test]
    fn lag_counts_from_the_oldest_unapplied_commit_and_is_zero_when_caught_up() {
        let m = Metrics::new();
        let now = now_micros();
        m.source_read(now - 20_000_000);
        m.source_read(now - 5_000_000);
        m.refresh_lag(now);
        assert_eq!(m.0.source_lag.get(), 20.0);
        m.source_applied(now - 20_000_000);
        m.refresh_lag(now);
        assert_eq!(m.0.source_lag.get(), 20.0, "the last applied commit is 20 s old and more is pending");
        m.source_applied(now - 5_000_000);
        m.refresh_lag(now);
        assert_eq!(m.0.source_lag.get(), 0.0, "caught up");
        // After a quiet hour one new change: the lag counts from it, not from the last applied one.
        m.source_read(now - 1_000_000);
        m.refresh_lag(now);
        assert_eq!(m.0.source_lag.get(), 1.0);
    }
}
