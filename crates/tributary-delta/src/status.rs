//! The status of a table as an operator sees it: version, stored position,
//! time of the last commit, snapshot state, file count.

use crate::commit::{find_note, schema_change_notes, CommitNote};
use crate::evolve::ColumnChange;
use crate::table::open_existing;
use crate::DeltaError;
use serde::Serialize;
use std::path::Path;
use tributary_core::SourcePosition;

/// Where a table stands.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TableStatus {
    /// The table's latest Delta version.
    pub version: i64,
    /// The txn version stored for the app id.
    pub committed_version: Option<i64>,
    /// The full source position of the last commit that stored a txn version.
    pub committed_position: Option<SourcePosition>,
    /// Time of the app id's last commit (of any kind), milliseconds since the epoch.
    pub last_commit_ts_ms: Option<i64>,
    /// False while a snapshot copy has started but not finished.
    pub snapshot_complete: bool,
    /// After a chunked copy: streamed inserts are matched by key until the
    /// stream passes this position (docs/snapshots.md); `None` once past it.
    pub catching_up_until: Option<SourcePosition>,
    /// Number of active data files.
    pub files: usize,
    /// Rows in the active data files, when every file has statistics.
    pub rows: Option<i64>,
    /// The source schema changes the table followed, oldest first.
    pub schema_changes: Vec<SchemaChangeRecord>,
}

/// One schema-change commit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SchemaChangeRecord {
    pub delta_version: i64,
    /// Where in the source the change took effect (the commit of its transaction).
    pub position: Option<SourcePosition>,
    pub changes: Vec<ColumnChange>,
}

/// Reads the status of the table at `table_path` for `app_id`.
pub async fn table_status(table_path: &Path, app_id: &str) -> Result<TableStatus, DeltaError> {
    let table = open_existing(table_path).await?;
    let err = |e| DeltaError::delta(table_path, "read table state", e);
    let state = table.snapshot().map_err(err)?;
    let log_store = table.log_store();
    let version = state.version() as i64;
    let committed_version = state.transaction_version(log_store.as_ref(), app_id).await.map_err(err)?;
    let last = find_note(log_store.as_ref(), version, app_id, |n| !n.kind.is_upgrade()).await.map_err(err)?;
    let snapshot_complete = match &last {
        Some(found) => found.note.kind.completes_snapshot(),
        None => committed_version.is_some(),
    };
    let last_commit_ts_ms = last.as_ref().and_then(|f| f.timestamp_ms);
    let with_txn = match last {
        Some(found) if found.note.txn_version.is_some() => Some(found),
        Some(found) => find_note(log_store.as_ref(), found.version, app_id, |n: &CommitNote| n.txn_version.is_some())
            .await
            .map_err(err)?,
        None => None,
    };
    let catching_up_until = with_txn
        .as_ref()
        .and_then(|f| f.note.catch_up_until())
        .filter(|until| until.to_version().is_ok_and(|v| committed_version.is_some_and(|c| c < v)));
    let committed_position =
        with_txn.filter(|f| f.note.txn_version == committed_version).and_then(|f| f.note.position());
    let schema_changes = schema_change_notes(log_store.as_ref(), version, app_id)
        .await
        .map_err(err)?
        .into_iter()
        .map(|f| SchemaChangeRecord {
            delta_version: f.version,
            position: f.note.position(),
            changes: f.note.schema_changes,
        })
        .collect();
    let log_data = state.log_data();
    let files = log_data.num_files();
    // Rows a deletion vector deletes are not in the table.
    let rows = log_data
        .iter()
        .map(|f| f.num_records().map(|n| n as i64 - f.deletion_vector_descriptor().map_or(0, |dv| dv.cardinality)))
        .sum();
    Ok(TableStatus {
        version,
        committed_version,
        committed_position,
        last_commit_ts_ms,
        snapshot_complete,
        catching_up_until,
        files,
        rows,
        schema_changes,
    })
}
