//! A change-feed reader, for tests and the `changes` command: per commit, the
//! change-data files when the commit has them, else its added files as
//! inserts and its removed files as deletes (Delta's CDF rules). Also reads
//! the current rows of a table.

use crate::encode::batch_to_json;
use crate::files::read_file;
use crate::schema::CHANGE_TYPE_COLUMN;
use crate::table::open_existing;
use crate::DeltaError;
use deltalake::kernel::Action;
use deltalake::logstore::get_actions;
use serde::Serialize;
use std::path::Path;

/// One row of the change feed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChangeRecord {
    /// The Delta version that made the change.
    pub commit_version: i64,
    /// That commit's timestamp, milliseconds since the epoch.
    pub commit_timestamp: i64,
    /// `insert`, `update_preimage`, `update_postimage` or `delete`.
    pub change_type: String,
    /// The row's columns (metadata columns included), rendered as by [`crate::value_to_json`].
    pub values: serde_json::Map<String, serde_json::Value>,
}

/// The change feed of versions `from_version..=to_version` (to the latest when `None`).
pub async fn read_changes(
    table_path: &Path,
    from_version: i64,
    to_version: Option<i64>,
) -> Result<Vec<ChangeRecord>, DeltaError> {
    let table = open_existing(table_path).await?;
    let table_files = crate::storage::TableFiles::of(table_path)?;
    let latest = table.version().map_or(-1, |v| v as i64);
    let to = to_version.unwrap_or(latest).min(latest);
    let log_store = table.log_store();
    let err = |e| DeltaError::delta(table_path, "read the log", e);
    let mut out = Vec::new();
    for version in from_version.max(0)..=to {
        let Some(bytes) = log_store.read_commit_entry(version as u64).await.map_err(err)? else {
            return Err(DeltaError::State {
                table: table_path.to_path_buf(),
                problem: format!("commit {version} is no longer in the log (cleaned up after a checkpoint)"),
            });
        };
        let actions = get_actions(version as u64, &bytes).map_err(err)?;
        let timestamp = actions
            .iter()
            .find_map(|a| match a {
                Action::CommitInfo(info) => info.timestamp,
                _ => None,
            })
            .unwrap_or(0);
        let cdc: Vec<&str> = actions
            .iter()
            .filter_map(|a| match a {
                Action::Cdc(c) => Some(c.path.as_str()),
                _ => None,
            })
            .collect();
        let mut files: Vec<(&str, Option<&str>)> = Vec::new();
        if cdc.is_empty() {
            for a in &actions {
                match a {
                    Action::Remove(r) if r.data_change => files.push((r.path.as_str(), Some("delete"))),
                    _ => {}
                }
            }
            for a in &actions {
                match a {
                    Action::Add(add) if add.data_change => files.push((add.path.as_str(), Some("insert"))),
                    _ => {}
                }
            }
        } else {
            files.extend(cdc.into_iter().map(|p| (p, None)));
        }
        for (path, change_type) in files {
            let batches = read_file(&table_files, path).map_err(|e| e.into_delta(table_path))?;
            for batch in &batches {
                let rows = batch_to_json(batch)
                    .map_err(|problem| DeltaError::Corrupt { table: table_path.to_path_buf(), problem })?;
                for mut values in rows {
                    let change_type = match change_type {
                        Some(t) => t.to_string(),
                        None => match values.remove(CHANGE_TYPE_COLUMN) {
                            Some(serde_json::Value::String(t)) => t,
                            other => {
                                return Err(DeltaError::Corrupt {
                                    table: table_path.to_path_buf(),
                                    problem: format!("change-data file {path} has {CHANGE_TYPE_COLUMN} = {other:?}"),
                                })
                            }
                        },
                    };
                    out.push(ChangeRecord {
                        commit_version: version,
                        commit_timestamp: timestamp,
                        change_type,
                        values,
                    });
                }
            }
        }
    }
    Ok(out)
}

/// Every row of the table's current version (without the rows deletion
/// vectors delete), as JSON objects.
pub async fn read_rows(table_path: &Path) -> Result<Vec<serde_json::Map<String, serde_json::Value>>, DeltaError> {
    let table = open_existing(table_path).await?;
    let table_files = crate::storage::TableFiles::of(table_path)?;
    let state = table.snapshot().map_err(|e| DeltaError::delta(table_path, "load", e))?;
    let mut out = Vec::new();
    let files: Vec<(String, Option<_>)> =
        state.log_data().iter().map(|f| (f.path().to_string(), f.deletion_vector_descriptor())).collect();
    for (path, vector) in files {
        let deleted = match vector {
            Some(dv) => Some(crate::deletion_vector::read(&table, &dv).await?),
            None => None,
        };
        let batches = read_file(&table_files, &path).map_err(|e| e.into_delta(table_path))?;
        let batches = crate::files::drop_deleted(batches, deleted.as_ref())
            .map_err(|e| DeltaError::arrow(table_path, "drop deleted rows", e))?;
        for batch in batches {
            out.extend(
                batch_to_json(&batch)
                    .map_err(|problem| DeltaError::Corrupt { table: table_path.to_path_buf(), problem })?,
            );
        }
    }
    Ok(out)
}
