//! Commits that put deletion vectors ([`crate::deletion_vector`]) into a
//! table, through Tributary's own commit path ([`crate::commit::commit`]):
//! - [`enable_deletion_vectors`]: the protocol upgrade to reader 3 / writer 7
//!   with the reader and writer feature `deletionVectors` (every feature the
//!   table had, listed or implied by its legacy versions, kept) and the
//!   property `delta.enableDeletionVectors = true` (PROTOCOL.md, "Deletion
//!   Vectors", "Enablement").
//! - [`commit_deleted_rows`]: marks rows of data files deleted. Each file's
//!   `add` is replaced by the same file carrying the union of its old vector
//!   and the new rows: a `remove` of the old logical file (same path, its old
//!   vector, `dataChange = true`) and an `add` of the same path with the new
//!   descriptor, the old size, modification time and statistics
//!   (`numRecords` still counts every row of the file, as the protocol
//!   requires; `tightBounds = false` since deleted rows may hold the bounds).
//!
//! The writer's own deletion-vector updates ([`crate::apply`], `update_mode =
//! "deletion_vectors"`) make the same `remove` + `add` pairs
//! ([`add_with_vector`]) inside its normal batch commits.

use crate::commit::{self, CommitMetrics, CommitNote};
#[cfg(test)]
use crate::deletion_vector::{self, Placement};
use crate::DeltaError;
use deltalake::kernel::{Action, Add, DeletionVectorDescriptor, LogicalFileView, MetadataExt as _, Protocol};
use deltalake::protocol::DeltaOperation;
use deltalake::DeltaTable;
#[cfg(test)]
use roaring::RoaringTreemap;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The table feature (reader and writer).
pub(crate) const FEATURE: &str = "deletionVectors";

/// The table property that lets writers add deletion vectors.
pub(crate) const PROP_ENABLE: &str = "delta.enableDeletionVectors";

/// The writer features a legacy writer version implies (PROTOCOL.md, "Writer
/// Version Requirements"): they must be listed once the table moves to writer 7.
fn implied_writer_features(writer_version: i32) -> &'static [&'static str] {
    match writer_version {
        ..=1 => &[],
        2 => &["appendOnly", "invariants"],
        3 => &["appendOnly", "invariants", "checkConstraints"],
        4 => &["appendOnly", "invariants", "checkConstraints", "changeDataFeed", "generatedColumns"],
        // Writer 5 and 6 (column mapping, identity columns) are refused by `commit::check_writable`.
        _ => &[],
    }
}

/// `protocol` with deletion vectors: reader 3 / writer 7, its features (listed,
/// or implied by legacy versions) plus `deletionVectors` in both lists; `None`
/// when it has them already.
pub(crate) fn with_deletion_vectors(protocol: &Protocol) -> Option<Protocol> {
    fn names<F: ToString>(features: Option<&[F]>) -> Vec<String> {
        features.unwrap_or_default().iter().map(|f| f.to_string()).collect()
    }
    let mut reader = names(protocol.reader_features());
    let mut writer = names(protocol.writer_features());
    if reader.iter().any(|f| f == FEATURE) && writer.iter().any(|f| f == FEATURE) {
        return None;
    }
    if protocol.min_writer_version() < 7 {
        writer.extend(implied_writer_features(protocol.min_writer_version()).iter().map(|f| f.to_string()));
    }
    for list in [&mut reader, &mut writer] {
        list.push(FEATURE.to_string());
        list.sort();
        list.dedup();
    }
    let protocol = serde_json::json!({
        "minReaderVersion": 3,
        "minWriterVersion": 7,
        "readerFeatures": reader,
        "writerFeatures": writer,
    });
    Some(serde_json::from_value(protocol).expect("a valid reader 3 / writer 7 protocol"))
}

fn table_dir(table: &DeltaTable) -> PathBuf {
    crate::durable::local_dir(table).unwrap_or_else(|| PathBuf::from(table.table_url().as_str()))
}

/// Upgrades the protocol for deletion vectors and sets
/// `delta.enableDeletionVectors = true` in one commit (a format change the
/// notes' readers skip, like [`commit::CommitKind::Upgrade`]). Returns the new
/// version, or `None` when the table had both already.
pub(crate) async fn enable_deletion_vectors(table: &mut DeltaTable, app_id: &str) -> Result<Option<i64>, DeltaError> {
    let dir = table_dir(table);
    let err = |e| DeltaError::delta(&dir, "enable deletion vectors", e);
    let state = table.snapshot().map_err(err)?;
    let protocol = with_deletion_vectors(state.protocol());
    let enabled = state.metadata().configuration().get(PROP_ENABLE).is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if protocol.is_none() && enabled {
        return Ok(None);
    }
    let mut actions: Vec<Action> = protocol.into_iter().map(Action::Protocol).collect();
    let metadata = state
        .metadata()
        .clone()
        .add_config_key(PROP_ENABLE.to_string(), "true".to_string())
        .map_err(|e| err(e.into()))?;
    actions.push(Action::Metadata(metadata));
    let note = CommitNote::new(app_id, commit::CommitKind::Upgrade, None, None);
    let operation = DeltaOperation::SetTableProperties {
        properties: HashMap::from([(PROP_ENABLE.to_string(), "true".to_string())]),
    };
    let version = commit::commit(table, actions, operation, note, CommitMetrics::default()).await.map_err(err)?;
    Ok(Some(version))
}

/// Marks `rows` (row indexes within the data file at `path`, relative as in
/// its `add` action) deleted, for each `(path, rows)`, in one commit carrying
/// `note` (its txn, if any) and `extra` actions (e.g. the `cdc` action of a
/// change-data file holding the deleted rows as `delete`). Rows the file's
/// vector already deletes stay deleted. New vectors are stored as `placement`
/// says. The table must have deletion vectors enabled
/// ([`enable_deletion_vectors`]). Returns the new version. (Tests: it stands
/// for another writer; Tributary's own marks go through its batch commits.)
#[cfg(test)]
pub(crate) async fn commit_deleted_rows(
    table: &mut DeltaTable,
    files: &[(String, RoaringTreemap)],
    placement: Placement,
    note: CommitNote,
    extra: Vec<Action>,
) -> Result<i64, DeltaError> {
    let dir = table_dir(table);
    let err = |e| DeltaError::delta(&dir, "mark rows deleted", e);
    let state = table.snapshot().map_err(err)?;
    if !writable_with_vectors(state) {
        return Err(DeltaError::State {
            table: dir,
            problem: format!("rows cannot be marked deleted: the table lacks the {FEATURE} feature or {PROP_ENABLE}"),
        });
    }
    let views: HashMap<String, _> = state.log_data().iter().map(|f| (f.path().to_string(), f)).collect();
    let mut actions = Vec::with_capacity(files.len() * 2 + extra.len());
    let mut merged = Vec::with_capacity(files.len());
    let mut rows_deleted = 0;
    for (path, rows) in files {
        let state_err = |problem: String| DeltaError::State { table: dir.clone(), problem };
        let view = views.get(path).ok_or_else(|| state_err(format!("{path} is not an active data file")))?;
        let records = view
            .num_records()
            .ok_or_else(|| state_err(format!("{path} has no numRecords statistic; a deletion vector needs it")))?;
        if let Some(beyond) = rows.max().filter(|m| *m >= records as u64) {
            return Err(state_err(format!("row index {beyond} is beyond the {records} rows of {path}")));
        }
        let mut all = match view.deletion_vector_descriptor() {
            Some(old) => deletion_vector::read(table, &old).await?,
            None => RoaringTreemap::new(),
        };
        let before = all.len();
        all |= rows;
        rows_deleted += all.len() - before;
        actions.push(Action::Remove(view.remove_action(true)));
        merged.push(all);
    }
    let descriptors = deletion_vector::store(&dir, &merged.iter().collect::<Vec<_>>(), placement)?;
    for ((path, _), descriptor) in files.iter().zip(descriptors) {
        actions.push(Action::Add(add_with_vector(&dir, &views[path], descriptor)?));
    }
    actions.extend(extra);
    let metrics = CommitMetrics { files_added: files.len(), files_removed: files.len(), ..Default::default() };
    tracing::debug!(table = %dir.display(), files = files.len(), rows_deleted, "rows marked deleted");
    commit::commit(table, actions, DeltaOperation::Delete { predicate: None }, note, metrics).await.map_err(err)
}

/// The `add` of the active data file `view` carrying `descriptor` as its
/// deletion vector (which replaces the one it had): the same path, size,
/// modification time and statistics (`numRecords` still counts every row of
/// the file; `tightBounds = false`), as a data change.
pub(crate) fn add_with_vector(
    dir: &Path,
    view: &LogicalFileView,
    descriptor: DeletionVectorDescriptor,
) -> Result<Add, DeltaError> {
    let path = view.path().to_string();
    let stats = view.stats().map(|s| loose_bounds(dir, &path, &s)).transpose()?;
    Ok(Add {
        partition_values: view.partition_values_map(),
        size: view.size(),
        modification_time: view.modification_time(),
        data_change: true,
        stats,
        tags: None,
        deletion_vector: Some(descriptor),
        base_row_id: None,
        default_row_commit_version: None,
        clustering_provider: None,
        path,
    })
}

/// `add` (of a data file not committed yet, written by an earlier part of a
/// source transaction) carrying `descriptor`, its statistics no longer tight.
pub(crate) fn with_vector(dir: &Path, add: &Add, descriptor: DeletionVectorDescriptor) -> Result<Add, DeltaError> {
    let stats = add.stats.as_deref().map(|s| loose_bounds(dir, &add.path, s)).transpose()?;
    Ok(Add { stats, deletion_vector: Some(descriptor), ..add.clone() })
}

/// True when the table's protocol lists the `deletionVectors` writer feature.
pub(crate) fn has_feature(protocol: &Protocol) -> bool {
    protocol.writer_features().is_some_and(|f| f.iter().any(|f| f.to_string() == FEATURE))
}

/// True when writers may add deletion vectors to the table: it has the
/// feature and `delta.enableDeletionVectors = true`.
pub(crate) fn writable_with_vectors(state: &deltalake::table::state::DeltaTableState) -> bool {
    has_feature(state.protocol())
        && state.metadata().configuration().get(PROP_ENABLE).is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// `stats` (an `add` action's statistics JSON) with `tightBounds: false`.
fn loose_bounds(dir: &Path, path: &str, stats: &str) -> Result<String, DeltaError> {
    let mut value: serde_json::Value = serde_json::from_str(stats)
        .map_err(|e| DeltaError::Corrupt { table: dir.to_path_buf(), problem: format!("stats of {path}: {e}") })?;
    if let Some(object) = value.as_object_mut() {
        object.insert("tightBounds".to_string(), serde_json::Value::Bool(false));
    }
    Ok(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn protocol(json: serde_json::Value) -> Protocol {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn a_legacy_cdf_table_keeps_every_implied_feature_and_gains_deletion_vectors() {
        let upgraded =
            with_deletion_vectors(&protocol(serde_json::json!({"minReaderVersion": 1, "minWriterVersion": 4})))
                .unwrap();
        assert_eq!(
            serde_json::to_value(&upgraded).unwrap(),
            serde_json::json!({"minReaderVersion": 3, "minWriterVersion": 7, "readerFeatures": ["deletionVectors"],
                "writerFeatures": ["appendOnly", "changeDataFeed", "checkConstraints", "deletionVectors",
                    "generatedColumns", "invariants"]})
        );
        assert_eq!(with_deletion_vectors(&upgraded), None);
    }

    #[test]
    fn a_table_features_table_keeps_its_listed_features() {
        let ntz = protocol(serde_json::json!({"minReaderVersion": 3, "minWriterVersion": 7,
            "readerFeatures": ["timestampNtz"], "writerFeatures": ["changeDataFeed", "invariants", "timestampNtz"]}));
        let upgraded = serde_json::to_value(with_deletion_vectors(&ntz).unwrap()).unwrap();
        assert_eq!(upgraded["readerFeatures"], serde_json::json!(["deletionVectors", "timestampNtz"]));
        assert_eq!(
            upgraded["writerFeatures"],
            serde_json::json!(["changeDataFeed", "deletionVectors", "invariants", "timestampNtz"])
        );
    }

    #[tokio::test]
    async fn marking_needs_the_feature_stays_within_the_file_and_syncs_the_vector_file_before_the_log() {
        use crate::tests::{actions, batch, ins, item, items_schema, open, pos, APP};
        let dir = tempfile::tempdir().unwrap();
        let mut w = open(dir.path(), &items_schema(true)).await;
        w.apply(&batch((1..=5).map(|i| ins(item(i, "x", i))).collect(), 100)).await.unwrap();
        let path = w.path().to_path_buf();
        drop(w);
        let file = actions(&path, 1)["add"][0]["path"].as_str().unwrap().to_string();
        let note = || CommitNote::new(APP, commit::CommitKind::Batch, Some(&pos(200)), None);
        let mut table = crate::table::open_existing(&path).await.unwrap();
        let two = RoaringTreemap::from_iter([1u64, 3]);

        let err = commit_deleted_rows(&mut table, &[(file.clone(), two.clone())], Placement::File, note(), vec![])
            .await
            .unwrap_err();
        assert!(matches!(err, DeltaError::State { .. }) && err.to_string().contains(FEATURE), "{err}");
        enable_deletion_vectors(&mut table, APP).await.unwrap();
        let beyond = RoaringTreemap::from_iter([5u64]);
        let err = commit_deleted_rows(&mut table, &[(file.clone(), beyond)], Placement::File, note(), vec![])
            .await
            .unwrap_err();
        assert!(err.to_string().contains("row index 5 is beyond the 5 rows"), "{err}");
        let err =
            commit_deleted_rows(&mut table, &[("nope.parquet".into(), two.clone())], Placement::File, note(), vec![])
                .await
                .unwrap_err();
        assert!(err.to_string().contains("nope.parquet is not an active data file"), "{err}");
        assert_eq!(table.version(), Some(2), "refusals commit nothing");

        let version = commit_deleted_rows(&mut table, &[(file, two)], Placement::File, note(), vec![]).await.unwrap();
        let synced = crate::durable::record::below(&path);
        let at = |name: &dyn Fn(&Path) -> bool| synced.iter().position(|p| name(p));
        let bin = at(&|p| p.file_name().unwrap().to_str().unwrap().starts_with("deletion_vector_")).expect("synced");
        let entry = at(&|p| p.ends_with(format!("_delta_log/{version:020}.json"))).expect("log entry synced");
        assert!(bin < entry, "{synced:?}");
    }

    #[test]
    fn bounds_turn_loose_and_the_rest_of_the_stats_stays() {
        let stats = r#"{"numRecords":3,"minValues":{"id":1},"maxValues":{"id":3},"nullCount":{"id":0}}"#;
        let loose: serde_json::Value =
            serde_json::from_str(&loose_bounds(Path::new("/t"), "a.parquet", stats).unwrap()).unwrap();
        assert_eq!(loose["tightBounds"], false);
        assert_eq!((loose["numRecords"].clone(), loose["maxValues"]["id"].clone()), (3.into(), 3.into()));
    }
}
