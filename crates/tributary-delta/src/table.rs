//! Locating, creating and loading Delta tables: `<root>/<schema>/<table>`
//! directories, creation with Tributary's schema and properties, and the index
//! of active data files with their primary-key bounds (their deletion vectors
//! are read into it by [`crate::deletion_vector::load_into`]).

use crate::files::{FileEntry, FileIndex};
use crate::key::{KeyBounds, KeyColumn, KeyPart};
use crate::schema::{TableLayout, PROP_TEXT_COLUMNS};
use crate::DeltaError;
use deltalake::arrow::array::{Array, AsArray};
use deltalake::arrow::datatypes::Int64Type;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::kernel::{Action, Metadata, MetadataExt as _, Protocol, StructType};
use deltalake::operations::create::CreateBuilder;
use deltalake::table::state::DeltaTableState;
use deltalake::{DeltaTable, DeltaTableBuilder, DeltaTableError, TableProperty};
use std::path::{Path, PathBuf};
use tributary_core::ColumnType;

/// Name of the transaction log folder.
const DELTA_LOG: &str = "_delta_log";

/// A handle on the table location `path`, its log not read yet.
pub(crate) fn unloaded(path: &Path) -> Result<DeltaTable, DeltaError> {
    let err = |context| move |e| DeltaError::delta(path, context, e);
    let text = path.to_str().ok_or_else(|| DeltaError::Unsupported {
        table: path.to_path_buf(),
        problem: "the table path is not valid UTF-8".into(),
    })?;
    let (url, options) = match crate::storage::remote_url(path) {
        Some(url) => {
            let options = crate::storage::options_for(&url);
            (url, options)
        }
        None => (deltalake::ensure_table_uri(text).map_err(err("resolve table location"))?, Default::default()),
    };
    DeltaTableBuilder::from_url(url).map_err(err("open"))?.with_storage_options(options).build().map_err(err("open"))
}

/// True when `path` (a local directory or an object-store URL) holds a Delta table (a `_delta_log` folder).
pub fn exists(path: &Path) -> bool {
    match crate::storage::remote_url(path) {
        Some(url) => crate::storage::remote_table_exists(&url),
        None => path.join(DELTA_LOG).is_dir(),
    }
}

/// Opens an existing table at `path` (latest version) for reading.
pub(crate) async fn open_existing(path: &Path) -> Result<DeltaTable, DeltaError> {
    if !exists(path) {
        return Err(DeltaError::delta(path, "open", DeltaTableError::NotATable(format!("no {DELTA_LOG} folder"))));
    }
    let mut table = unloaded(path)?;
    table.load().await.map_err(|e| DeltaError::delta(path, "load", e))?;
    Ok(table)
}

/// The directory under `sink.delta.root` where Tributary keeps its own files
/// (e.g. `validation.json` of `tributary validate`); never a table or a database.
pub const TRIBUTARY_DIR: &str = "_tributary";

/// Every Delta table below `root` (directories holding a `_delta_log`), sorted.
/// Tributary puts them at `<root>/<schema>/<table>`; any depth is searched,
/// except hidden directories and `<root>/_tributary` ([`TRIBUTARY_DIR`]).
pub fn list_tables(root: &Path) -> Vec<PathBuf> {
    if crate::storage::remote_url(root).is_some() {
        return crate::storage::list_remote_tables(root).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot list the tables of the lake");
            Vec::new()
        });
    }
    let mut found = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        if dir.join(DELTA_LOG).is_dir() {
            found.push(dir);
            continue;
        }
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let tributary_state = dir == root && name == TRIBUTARY_DIR;
            if is_dir && !name.starts_with('.') && !tributary_state {
                pending.push(entry.path());
            }
        }
    }
    found.sort();
    found
}

/// Loads the table at `path`, creating it for `layout` when there is none.
/// `owner_properties` are recorded with a new table (see [`crate::ownership`]);
/// a new table with `deletion_vectors` gets the `deletionVectors` feature and
/// `delta.enableDeletionVectors = true` in its first commit. The flag says
/// whether this call created the table.
pub(crate) async fn load_or_create(
    path: &Path,
    layout: &TableLayout,
    owner_properties: &std::collections::HashMap<String, String>,
    deletion_vectors: bool,
) -> Result<(DeltaTable, bool), DeltaError> {
    let err = |context| move |e| DeltaError::delta(path, context, e);
    let mut table = unloaded(path)?;
    match table.load().await {
        Ok(()) => return Ok((table, false)),
        Err(DeltaTableError::NotATable(_)) => {}
        Err(e) => return Err(err("load")(e)),
    }
    let mut properties = layout.tributary_properties();
    properties.extend(owner_properties.clone());
    if deletion_vectors {
        properties.insert(crate::deletion_vector_commit::PROP_ENABLE.to_string(), "true".to_string());
    }
    let mut create = CreateBuilder::new();
    if let Some(protocol) = table_features_protocol(layout, deletion_vectors) {
        create = create.with_actions([Action::Protocol(protocol)]);
    }
    let created = create
        .with_log_store(table.log_store())
        .with_table_name(layout.source.id.name.clone())
        .with_comment(format!("Tributary mirror of {}", layout.source.id))
        .with_columns(layout.delta_fields())
        .with_configuration_property(TableProperty::EnableChangeDataFeed, Some("true"))
        .with_configuration(properties.into_iter().map(|(k, v)| (k, Some(v))))
        .with_raise_if_key_not_exists(false)
        .with_commit_properties(CommitProperties::default().with_create_checkpoint(false))
        .await;
    match created {
        Ok(table) => {
            if let Some(dir) = crate::durable::local_dir(&table) {
                crate::durable::sync_log_entry(&dir, 0).map_err(err("sync the new table's first log entry"))?;
            }
            tracing::info!(table = %path.display(), source = %layout.source.id, deletion_vectors, "created delta table");
            Ok((table, true))
        }
        Err(e) => {
            // Another process may have created it meanwhile.
            if table.load().await.is_ok() {
                Ok((table, false))
            } else {
                Err(err("create")(e))
            }
        }
    }
}

/// The protocol of a table that needs table features (a `timestamp_ntz`
/// column): reader 3 / writer 7 listing every feature the table uses.
/// delta-rs lists `changeDataFeed` and `timestampNtz` by itself but not
/// `invariants`, which Delta Spark requires once a column is NOT NULL (the
/// primary key) and refuses to read the table without. `None` keeps the
/// legacy reader 1 / writer 4 protocol, unless `deletion_vectors`: then the
/// table also gets the `deletionVectors` reader and writer feature.
fn table_features_protocol(layout: &TableLayout, deletion_vectors: bool) -> Option<Protocol> {
    let needs_features = (0..layout.n_source()).any(|i| *layout.stored_type(i) == ColumnType::TimestampNtz);
    if !needs_features {
        if !deletion_vectors {
            return None;
        }
        let legacy = serde_json::json!({"minReaderVersion": 1, "minWriterVersion": 4});
        let legacy: Protocol = serde_json::from_value(legacy).expect("a valid reader 1 / writer 4 protocol");
        return crate::deletion_vector_commit::with_deletion_vectors(&legacy);
    }
    let protocol = serde_json::json!({
        "minReaderVersion": 3,
        "minWriterVersion": 7,
        "readerFeatures": ["timestampNtz"],
        "writerFeatures": ["changeDataFeed", "invariants", "timestampNtz"],
    });
    let protocol: Protocol = serde_json::from_value(protocol).expect("a valid reader 3 / writer 7 protocol");
    match deletion_vectors {
        true => crate::deletion_vector_commit::with_deletion_vectors(&protocol),
        false => Some(protocol),
    }
}

/// The active data files of the loaded state with their key bounds (from the
/// statistics delta-rs parsed out of the Add actions).
pub(crate) fn file_index(table: &DeltaTable, layout: &TableLayout) -> Result<FileIndex, DeltaTableError> {
    let state = table.snapshot()?;
    let mut index = FileIndex::default();
    for batch in state.add_actions_batches(true)? {
        let paths = batch.column_by_name("path").and_then(|c| c.as_string_opt::<i32>().cloned());
        let sizes = batch.column_by_name("size_bytes").and_then(|c| c.as_primitive_opt::<Int64Type>().cloned());
        let records = batch.column_by_name("num_records").and_then(|c| c.as_primitive_opt::<Int64Type>().cloned());
        let (Some(paths), Some(sizes)) = (paths, sizes) else {
            return Err(DeltaTableError::Generic("add actions table lacks path / size_bytes".into()));
        };
        let key_name = |i: usize| layout.source.columns[i].name.clone();
        let mins: Vec<Option<_>> =
            layout.pk.iter().map(|&i| batch.column_by_name(&format!("min.{}", key_name(i))).cloned()).collect();
        let maxs: Vec<Option<_>> =
            layout.pk.iter().map(|&i| batch.column_by_name(&format!("max.{}", key_name(i))).cloned()).collect();
        let min_cols: Vec<Option<KeyColumn>> = mins.iter().map(|c| c.as_ref().map(KeyColumn::new)).collect();
        let max_cols: Vec<Option<KeyColumn>> = maxs.iter().map(|c| c.as_ref().map(KeyColumn::new)).collect();
        for r in 0..batch.num_rows() {
            let mut bounds = KeyBounds::unknown(layout.pk.len());
            for k in 0..layout.pk.len() {
                bounds.min[k] = min_cols[k].as_ref().map(|c| c.part(r)).filter(|p| !matches!(p, KeyPart::Null));
                bounds.max[k] = max_cols[k].as_ref().map(|c| c.part(r)).filter(|p| !matches!(p, KeyPart::Null));
            }
            let rows = records.as_ref().and_then(|a| a.is_valid(r).then(|| a.value(r)));
            let entry = FileEntry { size: sizes.value(r), rows, bounds, deleted: None };
            index.files.insert(crate::files::percent_decode(paths.value(r)), entry);
        }
    }
    Ok(index)
}

/// The table's Metadata action for `layout`: its schema and Tributary's
/// schema properties; id, name, creation time and other properties kept.
pub(crate) fn metadata_for(state: &DeltaTableState, layout: &TableLayout) -> Result<Metadata, DeltaTableError> {
    let schema = StructType::try_new(layout.delta_fields())?;
    let mut metadata = state.metadata().clone().with_schema(&schema)?;
    for (key, value) in layout.tributary_properties() {
        metadata = metadata.add_config_key(key, value)?;
    }
    if layout.text_columns().is_empty() && state.metadata().configuration().contains_key(PROP_TEXT_COLUMNS) {
        metadata = metadata.add_config_key(PROP_TEXT_COLUMNS.to_string(), "[]".to_string())?;
    }
    Ok(metadata)
}

/// The protocol `layout` needs when the table's current one lacks it (a
/// `timestamp_ntz` column added to a reader 1 / writer 4 table); a table with
/// deletion vectors keeps them.
pub(crate) fn protocol_upgrade(state: &DeltaTableState, layout: &TableLayout) -> Option<Protocol> {
    let wanted = table_features_protocol(layout, false)?;
    let current = state.protocol();
    let has_ntz = current.reader_features().is_some_and(|f| f.iter().any(|x| x.as_ref() == "timestampNtz"));
    if has_ntz {
        return None;
    }
    match crate::deletion_vector_commit::has_feature(current) {
        true => crate::deletion_vector_commit::with_deletion_vectors(&wanted),
        false => Some(wanted),
    }
}
