//! Delta commits through delta-rs' commit API: the actions of one batch (Add,
//! Remove, AddCDCFile), the `txn` action carrying the source position, the
//! commit info carrying the full position, and checkpoints every N commits.
//!
//! delta-rs built without datafusion refuses to commit to tables with writer
//! version ≥ 4 (it cannot write change data, invariants, constraints or
//! generated columns itself). Tributary writes the change data files itself
//! and its tables use none of the other three, so [`check_writable`] verifies
//! exactly that when a table is opened, and [`WritableTable`] then presents
//! the table to the commit API with the legacy protocol (reader 1 / writer 2)
//! whose checks delta-rs can perform (append-only). The protocol on disk is
//! untouched.
//!
//! delta-rs' own conflict checker and retries are switched off
//! (`max_retries = 0`): a commit that finds a newer version in the log fails,
//! and [`crate::conflict`] decides what happens next.

use deltalake::kernel::transaction::{CommitBuilder, CommitProperties, TableReference, PROTOCOL};
use deltalake::kernel::{Action, Add, AddCDCFile, EagerSnapshot, Metadata, Protocol, Remove, Transaction};
use deltalake::logstore::{get_actions, LogStore};
use deltalake::protocol::DeltaOperation;
use deltalake::table::config::TablePropertiesExt as _;
use deltalake::table::state::DeltaTableState;
use deltalake::{DeltaTable, DeltaTableError};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use tributary_core::SourcePosition;

/// Key of Tributary's entry in the commit info of each of its commits.
pub const COMMIT_INFO_KEY: &str = "tributary";

/// How many commits back the committed position is looked for in the log.
const MAX_INFO_SCAN: i64 = 1000;

/// Writer features Tributary honours: the legacy writer-4 set (it writes change
/// data itself; invariants, constraints and generated columns are accepted
/// only while the table uses none), timestamp without zone, and deletion
/// vectors (every read of a data file skips the rows its vector deletes; see
/// [`crate::deletion_vector`] and [`crate::apply`]).
const HONOURED_WRITER_FEATURES: &[&str] = &[
    "appendOnly",
    "invariants",
    "checkConstraints",
    "changeDataFeed",
    "generatedColumns",
    "timestampNtz",
    "deletionVectors",
];

/// What a Tributary commit did; stored in its commit info.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum CommitKind {
    /// A batch of source transactions (possibly empty: a position-only commit).
    Batch,
    /// A file of snapshot rows; the snapshot is not complete yet.
    SnapshotChunk,
    /// The snapshot's last commit; carries the txn.
    SnapshotDone,
    /// All files removed so a snapshot can start over.
    Reset,
    /// The table's schema followed the source's (metadata, maybe rewritten
    /// files); no txn, the position says where in the source it happened.
    SchemaChange,
    /// A table written by an older Tributary gained a metadata column
    /// (metadata only, no data change); says nothing about the table's copy
    /// or position, so readers of the notes skip it ([`CommitKind::is_upgrade`]).
    Upgrade,
    /// Small data files rewritten into bigger ones (`dataChange = false`);
    /// like [`CommitKind::Upgrade`] it says nothing about the copy or position.
    Compaction,
}

impl CommitKind {
    /// True when the table holds a complete copy after a commit of this kind.
    pub fn completes_snapshot(self) -> bool {
        matches!(self, CommitKind::Batch | CommitKind::SnapshotDone | CommitKind::SchemaChange)
    }

    /// True for commits that change only the table's format, not its content or position.
    pub fn is_upgrade(self) -> bool {
        matches!(self, CommitKind::Upgrade | CommitKind::Compaction)
    }
}

/// Tributary's entry in a commit info.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct CommitNote {
    pub app_id: String,
    pub kind: CommitKind,
    /// The full source position (the JSON of [`SourcePosition`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<serde_json::Value>,
    /// The txn version written with this commit, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub txn_version: Option<i64>,
    /// What a schema-change commit changed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schema_changes: Vec<crate::evolve::ColumnChange>,
    /// A chunked snapshot's progress as of this commit (its start position
    /// and how far each lane got), so a restart continues from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<SnapshotProgressNote>,
    /// After a chunked snapshot: streamed changes up to this position (the
    /// JSON of [`SourcePosition`]) may find rows the copy already read, so
    /// inserts are matched by key until then (see [`crate::writer`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catch_up_until: Option<serde_json::Value>,
}

/// [`crate::SnapshotProgress`] as stored in a commit info.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct SnapshotProgressNote {
    /// The JSON of the [`SourcePosition`] streaming continues from.
    pub start: serde_json::Value,
    /// The source's own record of how far the copy got.
    pub cursor: serde_json::Value,
}

impl CommitNote {
    pub fn new(app_id: &str, kind: CommitKind, position: Option<&SourcePosition>, txn_version: Option<i64>) -> Self {
        let position = position.map(crate::snapshot_progress::position_json);
        CommitNote {
            app_id: app_id.to_string(),
            kind,
            position,
            txn_version,
            schema_changes: Vec::new(),
            snapshot: None,
            catch_up_until: None,
        }
    }

    pub fn position(&self) -> Option<SourcePosition> {
        serde_json::from_value(self.position.clone()?).ok()
    }

    /// The catch-up bound this commit carries, if any (see [`crate::writer`]).
    pub fn catch_up_until(&self) -> Option<SourcePosition> {
        serde_json::from_value(self.catch_up_until.clone()?).ok()
    }
}

/// A Tributary commit found in the log.
#[derive(Debug, Clone)]
pub(crate) struct FoundNote {
    pub version: i64,
    pub timestamp_ms: Option<i64>,
    pub note: CommitNote,
}

/// The table as presented to delta-rs' commit API (see the module docs).
pub(crate) struct WritableTable<'a> {
    state: &'a DeltaTableState,
    legacy: Protocol,
}

impl<'a> WritableTable<'a> {
    pub fn new(state: &'a DeltaTableState) -> Self {
        let legacy = serde_json::from_value(serde_json::json!({"minReaderVersion": 1, "minWriterVersion": 2}))
            .expect("reader 1 / writer 2 is a valid protocol");
        WritableTable { state, legacy }
    }
}

impl TableReference for WritableTable<'_> {
    fn config(&self) -> &delta_kernel::table_properties::TableProperties {
        self.state.table_config()
    }

    fn protocol(&self) -> &Protocol {
        &self.legacy
    }

    fn metadata(&self) -> &Metadata {
        self.state.metadata()
    }

    fn eager_snapshot(&self) -> &EagerSnapshot {
        self.state.snapshot()
    }
}

/// Why Tributary cannot write a table, if it cannot.
pub(crate) fn check_writable(state: &DeltaTableState) -> Result<(), String> {
    let protocol = state.protocol();
    PROTOCOL
        .can_read_from_protocol(protocol)
        .map_err(|e| format!("delta-rs cannot read this table's protocol: {e}"))?;
    let writer = protocol.min_writer_version();
    match writer {
        1..=4 => {}
        7 => {
            let features = protocol.writer_features().unwrap_or_default();
            if let Some(f) =
                features.iter().map(|f| f.to_string()).find(|f| !HONOURED_WRITER_FEATURES.contains(&f.as_str()))
            {
                return Err(format!("writer feature {f} is not supported by Tributary"));
            }
        }
        v => return Err(format!("writer protocol version {v} (column mapping / identity columns) is not supported")),
    }
    let config = state.metadata().configuration();
    if config.get("delta.enableChangeDataFeed").map(|v| v.eq_ignore_ascii_case("true")) != Some(true) {
        return Err("delta.enableChangeDataFeed is not true; Tributary tables always record change data".into());
    }
    if let Some(k) = config.keys().find(|k| k.starts_with("delta.constraints.")) {
        return Err(format!("CHECK constraint {k} is set; Tributary cannot enforce constraints"));
    }
    if let Some(mode) = config.get("delta.columnMapping.mode").filter(|m| m.as_str() != "none") {
        return Err(format!("column mapping mode {mode} is not supported"));
    }
    for field in state.schema().fields() {
        for key in field.metadata().keys() {
            if key.starts_with("delta.generationExpression") || key.starts_with("delta.invariants") {
                return Err(format!("column {} has {key}; Tributary cannot enforce it", field.name()));
            }
        }
    }
    Ok(())
}

/// An Add action for a new data file (relative path, no partitions).
pub(crate) fn add_action(path: &str, size: i64, stats: String) -> Action {
    Action::Add(Add {
        path: path.to_string(),
        partition_values: HashMap::new(),
        size,
        modification_time: now_ms(),
        data_change: true,
        stats: Some(stats),
        tags: None,
        deletion_vector: None,
        base_row_id: None,
        default_row_commit_version: None,
        clustering_provider: None,
    })
}

/// A Remove action (data change) for an active data file.
pub(crate) fn remove_action(path: &str, size: i64) -> Action {
    Action::Remove(Remove {
        path: path.to_string(),
        data_change: true,
        deletion_timestamp: Some(now_ms()),
        extended_file_metadata: Some(true),
        partition_values: Some(HashMap::new()),
        size: Some(size),
        tags: None,
        deletion_vector: None,
        base_row_id: None,
        default_row_commit_version: None,
    })
}

/// A Remove action for the active data file `path` of the index: it names the
/// file's deletion vector, if it has one (path and vector together identify
/// the logical file readers drop).
pub(crate) fn remove_file_action(path: &str, entry: &crate::files::FileEntry, data_change: bool) -> Action {
    let mut action = remove_action(path, entry.size);
    if let Action::Remove(remove) = &mut action {
        remove.data_change = data_change;
        remove.deletion_vector = entry.descriptor().cloned();
    }
    action
}

/// A Remove action without data change (tests: a compaction of files without deletion vectors).
#[cfg(test)]
pub(crate) fn remove_action_no_data_change(path: &str, size: i64) -> Action {
    let mut action = remove_action(path, size);
    if let Action::Remove(remove) = &mut action {
        remove.data_change = false;
    }
    action
}

/// An AddCDCFile action for a change-data file.
pub(crate) fn cdc_action(path: &str, size: i64) -> Action {
    Action::Cdc(AddCDCFile {
        path: path.to_string(),
        size,
        partition_values: HashMap::new(),
        data_change: false,
        tags: None,
    })
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Counters recorded as `operationMetrics` in the commit info.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct CommitMetrics {
    pub rows_written: u64,
    pub files_added: usize,
    pub files_removed: usize,
    pub bytes_written: u64,
    pub changes: usize,
}

/// Commits `actions` (plus the txn and Tributary's commit info) on top of the
/// table's loaded state, and moves the table's state to the new version.
/// Returns the new Delta version once the commit is durable: the files its
/// actions add and the new log entry are fsynced (see [`crate::durable`]).
/// Fails (see `error::is_conflict`) when the log holds a newer version than
/// the loaded state, or another writer takes the next version first:
/// delta-rs does not retry.
pub(crate) async fn commit(
    table: &mut DeltaTable,
    actions: Vec<Action>,
    operation: DeltaOperation,
    note: CommitNote,
    metrics: CommitMetrics,
) -> Result<i64, DeltaTableError> {
    let mut app_metadata: HashMap<String, serde_json::Value> = HashMap::new();
    let txn = note.txn_version.map(|v| Transaction::new_with_last_update(&note.app_id, v, Some(now_ms())));
    app_metadata.insert(COMMIT_INFO_KEY.to_string(), serde_json::to_value(&note).expect("notes serialize"));
    app_metadata.insert(
        "operationMetrics".to_string(),
        serde_json::json!({
            "numOutputRows": metrics.rows_written.to_string(),
            "numAddedFiles": metrics.files_added.to_string(),
            "numRemovedFiles": metrics.files_removed.to_string(),
            "numOutputBytes": metrics.bytes_written.to_string(),
            "numSourceChanges": metrics.changes.to_string(),
        }),
    );
    let mut properties = CommitProperties::default()
        .with_max_retries(0)
        .with_create_checkpoint(false)
        .with_cleanup_expired_logs(Some(false))
        .with_metadata(app_metadata);
    if let Some(txn) = txn {
        properties = properties.with_application_transaction(txn);
    }
    // The files the log entry names are durable before the entry exists.
    let local = crate::durable::local_dir(table);
    if let Some(dir) = &local {
        crate::durable::sync_new_files(dir, &actions)?;
    }
    let state = table.snapshot()?;
    let reference = WritableTable::new(state);
    let finalized = CommitBuilder::from(properties)
        .with_actions(actions)
        .build(Some(&reference), table.log_store(), operation)
        .await?;
    let version = finalized.version() as i64;
    table.state = Some(finalized.snapshot());
    if let Some(dir) = &local {
        crate::durable::sync_log_entry(dir, version)?;
    }
    Ok(version)
}

/// Writes a checkpoint for the table's current version (fsynced with
/// `_last_checkpoint`, see [`crate::durable`]), then deletes log
/// files older than the table's `delta.logRetentionDuration` (default 30
/// days) that the checkpoint makes unnecessary, unless
/// `delta.enableExpiredLogCleanup` is false.
pub(crate) async fn checkpoint_and_cleanup(table: &DeltaTable) -> Result<(), DeltaTableError> {
    deltalake::checkpoints::create_checkpoint(table, None).await?;
    if let Some(dir) = crate::durable::local_dir(table) {
        crate::durable::sync_checkpoint(&dir, table.snapshot()?.version() as i64)?;
    }
    if table.snapshot()?.table_config().enable_expired_log_cleanup() {
        let removed = deltalake::checkpoints::cleanup_metadata(table, None).await?;
        if removed > 0 {
            tracing::debug!(removed, "expired delta log files removed");
        }
    }
    Ok(())
}

/// Every schema-change commit of `app_id` at or below `latest`, oldest first
/// (looking at most [`MAX_INFO_SCAN`] commits back).
pub(crate) async fn schema_change_notes(
    log_store: &dyn LogStore,
    latest: i64,
    app_id: &str,
) -> Result<Vec<FoundNote>, DeltaTableError> {
    let mut found = Vec::new();
    let mut below = latest;
    while let Some(note) = find_note(log_store, below, app_id, |n| n.kind == CommitKind::SchemaChange).await? {
        below = note.version - 1;
        found.push(note);
        if below < 0 || latest - below > MAX_INFO_SCAN {
            break;
        }
    }
    found.reverse();
    Ok(found)
}

/// The newest commit at or below `latest` whose commit info carries a
/// Tributary note of `app_id` (looking at most [`MAX_INFO_SCAN`] commits back).
pub(crate) async fn find_note(
    log_store: &dyn LogStore,
    latest: i64,
    app_id: &str,
    mut accept: impl FnMut(&CommitNote) -> bool,
) -> Result<Option<FoundNote>, DeltaTableError> {
    let oldest = (latest - MAX_INFO_SCAN).max(0);
    for version in (oldest..=latest).rev() {
        let Some(bytes) = log_store.read_commit_entry(version as u64).await? else {
            break; // cleaned up below a checkpoint
        };
        for action in get_actions(version as u64, &bytes)? {
            if let Action::CommitInfo(info) = action {
                let note = info
                    .info
                    .get(COMMIT_INFO_KEY)
                    .and_then(|v| serde_json::from_value::<CommitNote>(v.clone()).ok())
                    .filter(|n| n.app_id == app_id);
                if let Some(note) = note {
                    if accept(&note) {
                        return Ok(Some(FoundNote { version, timestamp_ms: info.timestamp, note }));
                    }
                }
            }
        }
    }
    Ok(None)
}
